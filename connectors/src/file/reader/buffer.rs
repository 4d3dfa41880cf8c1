//! A file's bytes from some offset on, in one buffer that the file is read
//! into chunk by chunk.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Bytes read from the file at a time (the buffer grows for longer records).
pub(super) const CHUNK: usize = 64 << 10;

/// A file's bytes from some offset on, read in chunks into one buffer.
///
/// The file is opened for each chunk and closed again, so a job reading
/// thousands of files (each as several splits, all read in turn) holds no
/// file handles between reads; an open costs far less than the 64 KiB it
/// reads.
pub(super) struct Buffer {
    pub(super) path: PathBuf,
    pub(super) data: Vec<u8>,
    /// The first byte not yet consumed.
    pub(super) pos: usize,
    /// The end of the bytes read.
    pub(super) filled: usize,
    /// The file offset of `data[0]`.
    pub(super) base: u64,
    pub(super) eof: bool,
}

impl Buffer {
    pub(super) fn at(path: &Path, offset: u64) -> Buffer {
        Buffer {
            path: path.to_path_buf(),
            data: vec![0; CHUNK],
            pos: 0,
            filled: 0,
            base: offset,
            eof: false,
        }
    }

    /// Moves to `offset`, forgetting what was read.
    pub(super) fn seek(&mut self, offset: u64) {
        self.pos = 0;
        self.filled = 0;
        self.base = offset;
        self.eof = false;
    }

    /// Reads more bytes, dropping those before `keep` (an index into the
    /// data); returns by how much indices moved down. At the end of the
    /// file, sets `eof` instead.
    pub(super) fn fill(&mut self, keep: usize) -> std::io::Result<usize> {
        if keep > 0 {
            self.data.copy_within(keep..self.filled, 0);
            self.filled -= keep;
            self.pos -= keep;
            self.base += keep as u64;
        }
        if self.filled == self.data.len() {
            let len = self.data.len();
            self.data.resize(len * 2, 0);
        }
        let mut file = File::open(&self.path)?;
        file.seek(SeekFrom::Start(self.base + self.filled as u64))?;
        loop {
            match file.read(&mut self.data[self.filled..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(keep);
                }
                Ok(n) => {
                    self.filled += n;
                    return Ok(keep);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}
