//! A report's formats: the guide's "Get report" (HTML), "Get Excel report (XML format)"
//! (SpreadsheetML 2003), "Get Excel report (Tab delimited)", plus JSON for the API and XLSX.

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesPI, BytesStart, BytesText, Event};

use super::{Cell, Table};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Html,
    Xml,
    Tsv,
    Xlsx,
}

impl Format {
    pub fn parse(s: Option<&str>) -> Option<Format> {
        match s.unwrap_or("json") {
            "json" => Some(Format::Json),
            "html" => Some(Format::Html),
            "xml" => Some(Format::Xml),
            "tsv" => Some(Format::Tsv),
            "xlsx" => Some(Format::Xlsx),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Html => "text/html; charset=utf-8",
            Format::Xml => "application/vnd.ms-excel",
            Format::Tsv => "text/tab-separated-values; charset=utf-8",
            Format::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
    }

    /// File extension of a download (None: shown in place).
    pub fn download_extension(self) -> Option<&'static str> {
        match self {
            Format::Json | Format::Html => None,
            Format::Xml => Some("xml"),
            Format::Tsv => Some("tsv"),
            Format::Xlsx => Some("xlsx"),
        }
    }
}

fn html_escape(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

/// A self-contained page: one table, no scripts, no external resources.
pub fn html(t: &Table, subtitle: &str) -> String {
    let mut out = String::new();
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>");
    out.push_str(&html_escape(&t.title));
    out.push_str(
        "</title><style>body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}\
         table{border-collapse:collapse;font-size:.85rem}th,td{border:1px solid #ccc;padding:.3rem .5rem;\
         vertical-align:top;text-align:left;white-space:pre-wrap}th{background:#f0f0f0}\
         tr:nth-child(even) td{background:#fafafa}td.n{text-align:right}</style></head><body>\n<h1>",
    );
    out.push_str(&html_escape(&t.title));
    out.push_str("</h1>\n<p>");
    out.push_str(&html_escape(subtitle));
    out.push_str("</p>\n<table>\n<thead><tr>");
    for c in &t.columns {
        out.push_str("<th>");
        out.push_str(&html_escape(c));
        out.push_str("</th>");
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in &t.rows {
        out.push_str("<tr>");
        for cell in row {
            match cell {
                Cell::Int(n) => out.push_str(&format!("<td class=\"n\">{n}</td>")),
                Cell::Text(s) => {
                    out.push_str("<td>");
                    out.push_str(&html_escape(s));
                    out.push_str("</td>");
                }
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n</body></html>\n");
    out
}

/// Tab-delimited: one header line, one line per row. Tabs, newlines and backslashes inside a
/// cell (chat text) are escaped as `\t`, `\n`, `\r` and `\\`, so a row stays one line.
pub fn tsv(t: &Table) -> String {
    fn esc(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        for c in s.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\t' => out.push_str("\\t"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                _ => out.push(c),
            }
        }
        out
    }
    let mut out = String::new();
    let line = |cells: Vec<String>| cells.join("\t") + "\r\n";
    out.push_str(&line(t.columns.iter().map(|c| esc(c)).collect()));
    for row in &t.rows {
        out.push_str(&line(row.iter().map(|c| esc(&c.text())).collect()));
    }
    out
}

/// SpreadsheetML 2003, which Excel and LibreOffice open as a workbook.
pub fn spreadsheet_xml(t: &Table) -> Result<Vec<u8>, std::io::Error> {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 1);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    w.write_event(Event::PI(BytesPI::new(
        "mso-application progid=\"Excel.Sheet\"",
    )))?;
    let mut book = BytesStart::new("Workbook");
    book.push_attribute(("xmlns", "urn:schemas-microsoft-com:office:spreadsheet"));
    book.push_attribute(("xmlns:o", "urn:schemas-microsoft-com:office:office"));
    book.push_attribute(("xmlns:x", "urn:schemas-microsoft-com:office:excel"));
    book.push_attribute(("xmlns:ss", "urn:schemas-microsoft-com:office:spreadsheet"));
    w.write_event(Event::Start(book))?;
    // Sheet names: at most 31 characters, none of : \ / ? * [ ].
    let sheet: String = t
        .title
        .chars()
        .filter(|c| !matches!(c, ':' | '\\' | '/' | '?' | '*' | '[' | ']'))
        .take(31)
        .collect();
    let mut ws = BytesStart::new("Worksheet");
    ws.push_attribute(("ss:Name", sheet.as_str()));
    w.write_event(Event::Start(ws))?;
    w.write_event(Event::Start(BytesStart::new("Table")))?;
    let row = |w: &mut Writer<Vec<u8>>, cells: &mut dyn Iterator<Item = Cell>| {
        w.write_event(Event::Start(BytesStart::new("Row")))?;
        for cell in cells {
            w.write_event(Event::Start(BytesStart::new("Cell")))?;
            let mut data = BytesStart::new("Data");
            let text = match &cell {
                Cell::Int(n) => {
                    data.push_attribute(("ss:Type", "Number"));
                    n.to_string()
                }
                Cell::Text(s) => {
                    data.push_attribute(("ss:Type", "String"));
                    s.clone()
                }
            };
            w.write_event(Event::Start(data))?;
            w.write_event(Event::Text(BytesText::new(&text)))?;
            w.write_event(Event::End(BytesEnd::new("Data")))?;
            w.write_event(Event::End(BytesEnd::new("Cell")))?;
        }
        w.write_event(Event::End(BytesEnd::new("Row")))
    };
    row(&mut w, &mut t.columns.iter().map(|c| Cell::Text(c.clone())))?;
    for r in &t.rows {
        row(&mut w, &mut r.iter().cloned())?;
    }
    w.write_event(Event::End(BytesEnd::new("Table")))?;
    w.write_event(Event::End(BytesEnd::new("Worksheet")))?;
    w.write_event(Event::End(BytesEnd::new("Workbook")))?;
    Ok(w.into_inner())
}

/// An XLSX workbook of one sheet; numbers stay numbers.
pub fn xlsx(t: &Table) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    let name: String = t
        .title
        .chars()
        .filter(|c| !matches!(c, ':' | '\\' | '/' | '?' | '*' | '[' | ']' | '\''))
        .take(31)
        .collect();
    sheet.set_name(name)?;
    let bold = rust_xlsxwriter::Format::new().set_bold();
    for (c, name) in t.columns.iter().enumerate() {
        sheet.write_string_with_format(0, c as u16, name, &bold)?;
    }
    for (r, row) in t.rows.iter().enumerate() {
        let r = r as u32 + 1;
        for (c, cell) in row.iter().enumerate() {
            match cell {
                Cell::Int(n) => sheet.write_number(r, c as u16, *n as f64)?,
                Cell::Text(s) => sheet.write_string(r, c as u16, s)?,
            };
        }
    }
    book.save_to_buffer()
}
