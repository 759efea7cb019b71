//! A report file written as its rows are read: the report is read in chunks that each continue
//! after the last one's key (`Page::after`), every chunk is written out ([`FileWriter`]) and handed
//! over before the next is read. Memory stays that of one chunk whatever the report's length,
//! and whoever pulls the chunks (the HTTP response body) decides the pace: when it stops asking
//! (a client gone), no further query runs.

use super::format::{FileWriter, Format};
use super::{FIRST_KEY, Key, ListType, Page, Request, build, survey_questions};
use crate::store::{Store, StoreError};

/// Rows read per chunk: a few hundred kilobytes of cells, a short query each.
pub const CHUNK_ROWS: u64 = 2_000;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("writing the file: {0}")]
    Write(#[from] std::io::Error),
}

pub struct Export {
    req: Request,
    writer: FileWriter,
    subtitle: String,
    state: State,
}

enum State {
    Start,
    After(Key),
    Finished,
}

impl Export {
    /// `format` must be a file format (not JSON); `req.page` is replaced by the export's chunks.
    pub fn new(req: Request, format: Format, title: &str, subtitle: String) -> Option<Export> {
        Some(Export {
            writer: FileWriter::new(format, title)?,
            req,
            subtitle,
            state: State::Start,
        })
    }

    /// Data rows written so far.
    pub fn rows(&self) -> u64 {
        self.writer.rows()
    }

    /// The next piece of the file (the first holds the header), or None after the end.
    pub async fn next_chunk(&mut self, store: &Store) -> Result<Option<Vec<u8>>, ExportError> {
        let after = match self.state {
            State::Finished => return Ok(None),
            State::Start => FIRST_KEY,
            State::After(key) => key,
        };
        if matches!(self.state, State::Start)
            && self.req.list == ListType::All
            && self.req.area.is_survey()
        {
            // Every chunk has the same question columns: those of the whole report.
            self.req.survey_questions = Some(survey_questions(store, &self.req).await?);
        }
        let req = Request {
            page: Some(Page {
                offset: 0,
                limit: CHUNK_ROWS,
                after: Some(after),
            }),
            ..self.req.clone()
        };
        let table = build(store, &req).await?;
        if matches!(self.state, State::Start) {
            self.writer.begin(&table.columns, &self.subtitle)?;
        }
        for row in &table.rows {
            self.writer.row(row)?;
        }
        let next = table.next;
        drop(table);
        // glibc keeps what a thread freed in that thread's arena, and a chunk's rows are
        // allocated on whichever pooled SQLite connection's thread and runtime worker ran it:
        // over a long file each of them would keep a chunk's worth (a million-row file grew the
        // server by 51 MB). Trimming after each chunk keeps the growth to about one chunk.
        crate::auth::release_freed_memory();
        match next {
            Some(key) => self.state = State::After(key),
            None => {
                self.writer.finish()?;
                self.state = State::Finished;
            }
        }
        Ok(Some(self.writer.take()))
    }
}
