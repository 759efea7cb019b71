//! A report's formats: the guide's "Get report" (HTML), "Get Excel report (XML format)"
//! (SpreadsheetML 2003), "Get Excel report (Tab delimited)", plus JSON for the API and XLSX.
//!
//! The file formats are written as the rows come ([`FileWriter`]): a header, rows, an end, each
//! appended to a buffer that the caller drains ([`FileWriter::take`]) and sends on, so a report
//! of a million rows never sits in memory. XLSX is a zip of XML parts written as a stream (data
//! descriptors, no seeking back): the sheets first, row by row, then the workbook that lists them.
//! Excel holds at most 1,048,576 rows per sheet; longer reports continue on further sheets (in
//! XLSX and SpreadsheetML), each with the header row again.

use std::io::Write;
use std::sync::{Arc, Mutex};

use zip::write::SimpleFileOptions;

use super::Cell;

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

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Html => "html",
            Format::Xml => "xml",
            Format::Tsv => "tsv",
            Format::Xlsx => "xlsx",
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

/// Excel's rows per sheet, the header row included.
pub const SHEET_ROWS: u64 = 1_048_576;

/// Excel's longest cell text; longer text (a long chatlog) is cut there in XLSX.
const XLSX_CELL_CHARS: usize = 32_767;

/// Appends `s` escaped for XML text and attribute values. Characters XML 1.0 cannot carry
/// (control characters other than tab, newline and carriage return) are left out.
fn xml_escape(out: &mut Vec<u8>, s: &str) {
    let mut rest = s;
    while let Some(i) = rest.find(|c: char| {
        matches!(c, '<' | '>' | '&' | '"' | '\'')
            || (c < ' ' && !matches!(c, '\t' | '\n' | '\r'))
            || matches!(c, '\u{FFFE}' | '\u{FFFF}')
    }) {
        out.extend_from_slice(&rest.as_bytes()[..i]);
        let c = rest[i..].chars().next().unwrap_or(' ');
        match c {
            '<' => out.extend_from_slice(b"&lt;"),
            '>' => out.extend_from_slice(b"&gt;"),
            '&' => out.extend_from_slice(b"&amp;"),
            '"' => out.extend_from_slice(b"&quot;"),
            '\'' => out.extend_from_slice(b"&apos;"),
            _ => {}
        }
        rest = &rest[i + c.len_utf8()..];
    }
    out.extend_from_slice(rest.as_bytes());
}

/// A sheet name: at most 31 characters, none of : \ / ? * [ ] ' ; `n` > 1 adds " (n)".
fn sheet_name(title: &str, n: u32) -> String {
    let suffix = if n > 1 {
        format!(" ({n})")
    } else {
        String::new()
    };
    let base: String = title
        .chars()
        .filter(|c| !matches!(c, ':' | '\\' | '/' | '?' | '*' | '[' | ']' | '\''))
        .take(31 - suffix.chars().count())
        .collect();
    base + &suffix
}

/// A report file being written. `begin` once, `row` per row, `finish` once; `take` between any
/// two of them hands over what is written so far.
pub struct FileWriter {
    kind: Kind,
    title: String,
    columns: Vec<String>,
    /// Rows on the current sheet, header included (XLSX, SpreadsheetML).
    sheet_rows: u64,
    sheets: u32,
    rows: u64,
}

enum Kind {
    Html(Vec<u8>),
    Xml(Vec<u8>),
    Tsv(Vec<u8>),
    Xlsx(Box<Xlsx>),
}

/// An XLSX package written as a zip stream into a buffer shared with the writer that drains it.
struct Xlsx {
    zip: zip::ZipWriter<zip::write::StreamWriter<SharedBuf>>,
    buf: SharedBuf,
    /// The sheet XML of the current row, built here and written to the zip in one call.
    line: Vec<u8>,
}

#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl SharedBuf {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub type WriteResult = Result<(), std::io::Error>;

fn zip_error(e: zip::result::ZipError) -> std::io::Error {
    std::io::Error::other(e)
}

impl FileWriter {
    /// `format`: one of the file formats (JSON is not a file).
    pub fn new(format: Format, title: &str) -> Option<FileWriter> {
        let kind = match format {
            Format::Json => return None,
            Format::Html => Kind::Html(Vec::new()),
            Format::Xml => Kind::Xml(Vec::new()),
            Format::Tsv => Kind::Tsv(Vec::new()),
            Format::Xlsx => {
                let buf = SharedBuf::default();
                Kind::Xlsx(Box::new(Xlsx {
                    zip: zip::ZipWriter::new_stream(buf.clone()),
                    buf,
                    line: Vec::new(),
                }))
            }
        };
        Some(FileWriter {
            kind,
            title: title.to_owned(),
            columns: Vec::new(),
            sheet_rows: 0,
            sheets: 0,
            rows: 0,
        })
    }

    /// Data rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// What has been written since the last `take`.
    pub fn take(&mut self) -> Vec<u8> {
        match &mut self.kind {
            Kind::Html(b) | Kind::Xml(b) | Kind::Tsv(b) => std::mem::take(b),
            Kind::Xlsx(x) => x.buf.take(),
        }
    }

    /// The start of the file and the header row. `subtitle`: the HTML page's line under the title.
    pub fn begin(&mut self, columns: &[String], subtitle: &str) -> WriteResult {
        self.columns = columns.to_vec();
        match &mut self.kind {
            Kind::Html(out) => {
                out.extend_from_slice(
                    b"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>",
                );
                xml_escape(out, &self.title);
                out.extend_from_slice(
                    b"</title><style>body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}\
                      table{border-collapse:collapse;font-size:.85rem}th,td{border:1px solid #ccc;padding:.3rem .5rem;\
                      vertical-align:top;text-align:left;white-space:pre-wrap}th{background:#f0f0f0}\
                      tr:nth-child(even) td{background:#fafafa}td.n{text-align:right}</style></head><body>\n<h1>",
                );
                xml_escape(out, &self.title);
                out.extend_from_slice(b"</h1>\n<p>");
                xml_escape(out, subtitle);
                out.extend_from_slice(b"</p>\n<table>\n<thead><tr>");
                for c in columns {
                    out.extend_from_slice(b"<th>");
                    xml_escape(out, c);
                    out.extend_from_slice(b"</th>");
                }
                out.extend_from_slice(b"</tr></thead>\n<tbody>\n");
            }
            Kind::Tsv(out) => {
                let header: Vec<Cell> = columns.iter().map(|c| Cell::Text(c.clone())).collect();
                tsv_line(out, &header);
            }
            Kind::Xml(out) => {
                out.extend_from_slice(
                    b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<?mso-application progid=\"Excel.Sheet\"?>\n\
                      <Workbook xmlns=\"urn:schemas-microsoft-com:office:spreadsheet\" \
                      xmlns:o=\"urn:schemas-microsoft-com:office:office\" \
                      xmlns:x=\"urn:schemas-microsoft-com:office:excel\" \
                      xmlns:ss=\"urn:schemas-microsoft-com:office:spreadsheet\">\n",
                );
            }
            Kind::Xlsx(x) => {
                let options = SimpleFileOptions::default();
                // The parts that do not depend on the number of sheets come first; the content
                // types name worksheets by default (`xml`), so sheets need no entry of their own.
                for (name, body) in [
                    ("[Content_Types].xml", CONTENT_TYPES),
                    ("_rels/.rels", ROOT_RELS),
                    ("xl/styles.xml", STYLES),
                ] {
                    x.zip.start_file(name, options).map_err(zip_error)?;
                    x.zip.write_all(body.as_bytes())?;
                }
            }
        }
        self.new_sheet()
    }

    /// Starts a sheet (XLSX, SpreadsheetML) with the header row.
    fn new_sheet(&mut self) -> WriteResult {
        self.sheets += 1;
        self.sheet_rows = 1;
        let name = sheet_name(&self.title, self.sheets);
        match &mut self.kind {
            Kind::Html(_) | Kind::Tsv(_) => {}
            Kind::Xml(out) => {
                if self.sheets > 1 {
                    out.extend_from_slice(b"</Table>\n</Worksheet>\n");
                }
                out.extend_from_slice(b"<Worksheet ss:Name=\"");
                xml_escape(out, &name);
                out.extend_from_slice(b"\">\n<Table>\n");
                let header: Vec<Cell> =
                    self.columns.iter().map(|c| Cell::Text(c.clone())).collect();
                xml_row(out, &header);
            }
            Kind::Xlsx(x) => {
                // Zip64 sizes: a sheet of a million long rows can pass 4 GB (Excel reads them).
                let options = SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Deflated)
                    .compression_level(Some(1))
                    .large_file(true);
                if self.sheets > 1 {
                    x.zip.write_all(SHEET_END.as_bytes())?;
                }
                x.zip
                    .start_file(format!("xl/worksheets/sheet{}.xml", self.sheets), options)
                    .map_err(zip_error)?;
                x.zip.write_all(SHEET_START.as_bytes())?;
                x.line.clear();
                let header: Vec<Cell> =
                    self.columns.iter().map(|c| Cell::Text(c.clone())).collect();
                xlsx_row(&mut x.line, 1, &header, true);
                x.zip.write_all(&x.line)?;
            }
        }
        Ok(())
    }

    pub fn row(&mut self, cells: &[Cell]) -> WriteResult {
        if matches!(self.kind, Kind::Xml(_) | Kind::Xlsx(_)) && self.sheet_rows >= SHEET_ROWS {
            self.new_sheet()?;
        }
        self.rows += 1;
        self.sheet_rows += 1;
        match &mut self.kind {
            Kind::Html(out) => {
                out.extend_from_slice(b"<tr>");
                for cell in cells {
                    match cell {
                        Cell::Int(n) => {
                            write!(out, "<td class=\"n\">{n}</td>")?;
                        }
                        Cell::Text(s) => {
                            out.extend_from_slice(b"<td>");
                            xml_escape(out, s);
                            out.extend_from_slice(b"</td>");
                        }
                    }
                }
                out.extend_from_slice(b"</tr>\n");
            }
            Kind::Tsv(out) => tsv_line(out, cells),
            Kind::Xml(out) => xml_row(out, cells),
            Kind::Xlsx(x) => {
                x.line.clear();
                xlsx_row(&mut x.line, self.sheet_rows, cells, false);
                x.zip.write_all(&x.line)?;
            }
        }
        Ok(())
    }

    /// The end of the file.
    pub fn finish(&mut self) -> WriteResult {
        match &mut self.kind {
            Kind::Html(out) => out.extend_from_slice(b"</tbody>\n</table>\n</body></html>\n"),
            Kind::Tsv(_) => {}
            Kind::Xml(out) => out.extend_from_slice(b"</Table>\n</Worksheet>\n</Workbook>\n"),
            Kind::Xlsx(x) => {
                x.zip.write_all(SHEET_END.as_bytes())?;
                let options = SimpleFileOptions::default();
                let mut book = String::from(WORKBOOK_START);
                let mut rels = String::from(WORKBOOK_RELS_START);
                for n in 1..=self.sheets {
                    let mut name = Vec::new();
                    xml_escape(&mut name, &sheet_name(&self.title, n));
                    book.push_str(&format!(
                        "<sheet name=\"{}\" sheetId=\"{n}\" r:id=\"rId{n}\"/>",
                        String::from_utf8_lossy(&name)
                    ));
                    rels.push_str(&format!(
                        "<Relationship Id=\"rId{n}\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet\" Target=\"worksheets/sheet{n}.xml\"/>"
                    ));
                }
                book.push_str("</sheets></workbook>");
                rels.push_str(&format!(
                    "<Relationship Id=\"rId{}\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles\" Target=\"styles.xml\"/></Relationships>",
                    self.sheets + 1
                ));
                for (name, body) in [
                    ("xl/workbook.xml", book),
                    ("xl/_rels/workbook.xml.rels", rels),
                ] {
                    x.zip.start_file(name, options).map_err(zip_error)?;
                    x.zip.write_all(body.as_bytes())?;
                }
                // The central directory; the zip writer is done after this.
                let done =
                    std::mem::replace(&mut x.zip, zip::ZipWriter::new_stream(SharedBuf::default()));
                done.finish().map_err(zip_error)?;
            }
        }
        Ok(())
    }
}

/// Tab-delimited: one line per row. Tabs, newlines and backslashes inside a cell (chat text) are
/// escaped as `\t`, `\n`, `\r` and `\\`, so a row stays one line.
fn tsv_line(out: &mut Vec<u8>, cells: &[Cell]) {
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        match cell {
            Cell::Int(n) => {
                let _ = write!(out, "{n}");
            }
            Cell::Text(s) => {
                let mut rest = s.as_str();
                while let Some(i) = rest.find(['\\', '\t', '\n', '\r']) {
                    out.extend_from_slice(&rest.as_bytes()[..i]);
                    out.extend_from_slice(match rest.as_bytes()[i] {
                        b'\\' => b"\\\\",
                        b'\t' => b"\\t",
                        b'\n' => b"\\n",
                        _ => b"\\r",
                    });
                    rest = &rest[i + 1..];
                }
                out.extend_from_slice(rest.as_bytes());
            }
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// A SpreadsheetML row; numbers stay numbers.
fn xml_row(out: &mut Vec<u8>, cells: &[Cell]) {
    out.extend_from_slice(b"<Row>");
    for cell in cells {
        match cell {
            Cell::Int(n) => {
                let _ = write!(out, "<Cell><Data ss:Type=\"Number\">{n}</Data></Cell>");
            }
            Cell::Text(s) => {
                out.extend_from_slice(b"<Cell><Data ss:Type=\"String\">");
                xml_escape(out, s);
                out.extend_from_slice(b"</Data></Cell>");
            }
        }
    }
    out.extend_from_slice(b"</Row>\n");
}

/// An XLSX sheet row `r` (from 1): numbers as numbers, text inline (no shared-strings table,
/// which would have to be held until the end); `bold` for the header (style 1 of `STYLES`).
fn xlsx_row(out: &mut Vec<u8>, r: u64, cells: &[Cell], bold: bool) {
    let _ = write!(out, "<row r=\"{r}\">");
    let style = if bold { " s=\"1\"" } else { "" };
    for (c, cell) in cells.iter().enumerate() {
        let mut column = String::new();
        let mut n = c + 1;
        while n > 0 {
            column.insert(0, char::from(b'A' + ((n - 1) % 26) as u8));
            n = (n - 1) / 26;
        }
        match cell {
            Cell::Int(v) => {
                let _ = write!(out, "<c r=\"{column}{r}\"{style}><v>{v}</v></c>");
            }
            Cell::Text(s) => {
                let _ = write!(
                    out,
                    "<c r=\"{column}{r}\"{style} t=\"inlineStr\"><is><t xml:space=\"preserve\">"
                );
                let text = match s.char_indices().nth(XLSX_CELL_CHARS) {
                    Some((cut, _)) => &s[..cut],
                    None => s.as_str(),
                };
                xml_escape(out, text);
                out.extend_from_slice(b"</t></is></c>");
            }
        }
    }
    out.extend_from_slice(b"</row>");
}

const CONTENT_TYPES: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n\
<Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\">\
<Default Extension=\"rels\" ContentType=\"application/vnd.openxmlformats-package.relationships+xml\"/>\
<Default Extension=\"xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml\"/>\
<Override PartName=\"/xl/workbook.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml\"/>\
<Override PartName=\"/xl/styles.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml\"/>\
</Types>";

const ROOT_RELS: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n\
<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">\
<Relationship Id=\"rId1\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument\" Target=\"xl/workbook.xml\"/>\
</Relationships>";

/// Style 0: the default; style 1: bold (the header row).
const STYLES: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n\
<styleSheet xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\">\
<fonts count=\"2\"><font><sz val=\"11\"/><name val=\"Calibri\"/></font><font><b/><sz val=\"11\"/><name val=\"Calibri\"/></font></fonts>\
<fills count=\"2\"><fill><patternFill patternType=\"none\"/></fill><fill><patternFill patternType=\"gray125\"/></fill></fills>\
<borders count=\"1\"><border><left/><right/><top/><bottom/><diagonal/></border></borders>\
<cellStyleXfs count=\"1\"><xf numFmtId=\"0\" fontId=\"0\" fillId=\"0\" borderId=\"0\"/></cellStyleXfs>\
<cellXfs count=\"2\"><xf numFmtId=\"0\" fontId=\"0\" fillId=\"0\" borderId=\"0\" xfId=\"0\"/>\
<xf numFmtId=\"0\" fontId=\"1\" fillId=\"0\" borderId=\"0\" xfId=\"0\" applyFont=\"1\"/></cellXfs>\
<cellStyles count=\"1\"><cellStyle name=\"Normal\" xfId=\"0\" builtinId=\"0\"/></cellStyles>\
</styleSheet>";

const SHEET_START: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n\
<worksheet xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\"><sheetData>";

const SHEET_END: &str = "</sheetData></worksheet>";

const WORKBOOK_START: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n\
<workbook xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\" \
xmlns:r=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships\"><sheets>";

const WORKBOOK_RELS_START: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n\
<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">";

#[cfg(test)]
mod tests {
    use super::*;

    fn write_all(format: Format, rows: u64) -> Vec<u8> {
        let mut w = FileWriter::new(format, "Session Report (List All)").unwrap();
        let mut out = Vec::new();
        w.begin(&["A".into(), "B & C".into()], "sub").unwrap();
        for i in 0..rows {
            w.row(&[Cell::Int(i as i64), Cell::Text("x<\u{1}y\tz".into())])
                .unwrap();
            out.extend(w.take());
        }
        w.finish().unwrap();
        out.extend(w.take());
        out
    }

    #[test]
    fn text_formats_escape_and_drop_what_xml_cannot_carry() {
        let tsv = String::from_utf8(write_all(Format::Tsv, 1)).unwrap();
        assert_eq!(tsv, "A\tB & C\r\n0\tx<\u{1}y\\tz\r\n");
        let xml = String::from_utf8(write_all(Format::Xml, 1)).unwrap();
        assert!(
            xml.contains("<Data ss:Type=\"String\">x&lt;y\tz</Data>"),
            "{xml}"
        );
        assert!(xml.contains("<Data ss:Type=\"String\">B &amp; C</Data>"));
        let html = String::from_utf8(write_all(Format::Html, 1)).unwrap();
        assert!(
            html.contains("<td class=\"n\">0</td><td>x&lt;y\tz</td>"),
            "{html}"
        );
    }

    #[test]
    fn xlsx_is_a_zip_with_the_rows_and_the_workbook_last() {
        let bytes = write_all(Format::Xlsx, 3);
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        let mut sheet = String::new();
        std::io::Read::read_to_string(
            &mut zip.by_name("xl/worksheets/sheet1.xml").unwrap(),
            &mut sheet,
        )
        .unwrap();
        assert_eq!(sheet.matches("<row ").count(), 4);
        assert!(sheet.contains("<c r=\"A4\"><v>2</v></c>"), "{sheet}");
        let mut book = String::new();
        std::io::Read::read_to_string(&mut zip.by_name("xl/workbook.xml").unwrap(), &mut book)
            .unwrap();
        assert!(
            book.contains("name=\"Session Report (List All)\""),
            "{book}"
        );
    }

    #[test]
    fn sheet_names_fit_excel() {
        assert_eq!(
            sheet_name("Session Report (List All)", 1),
            "Session Report (List All)"
        );
        let long = "Transferred Sessions - Extended Report (List All)";
        assert_eq!(sheet_name(long, 1).chars().count(), 31);
        assert!(sheet_name(long, 12).ends_with(" (12)"));
        assert_eq!(sheet_name(long, 12).chars().count(), 31);
    }
}
