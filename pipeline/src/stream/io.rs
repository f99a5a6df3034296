//! Where a stream's bytes come from and go to: any `Read` or `Write`, an
//! iterator or a channel of element vectors, a callback.
use crate::elem::{ElemType, as_bytes};
use kernel_math::Element;
use std::io::{self, Read, Write};
use std::sync::mpsc::{Receiver, SyncSender};

/// A stream's input, read on its own thread: what feeds a stream (a
/// source *stage* is another thing, [`crate::stage::SourceStage`]).
pub trait StreamReader: Send + 'static {
    /// Fills `buf` from the stream and returns the bytes written: fewer
    /// than `buf.len()` only at the stream's end (0 once it has ended).
    fn fill(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// The element type the source yields, where it knows it (typed
    /// iterators and channels); the pipeline refuses a mismatch.
    fn elem(&self) -> Option<ElemType> {
        None
    }
    /// Where the stream's bytes can be read at any offset from several
    /// threads at once (a regular file): the stream then reads several
    /// chunks at once through it, from the source's current position
    /// (chunk `i` at byte `i x chunk`), instead of calling `fill`.
    fn positional(&self) -> Option<std::sync::Arc<dyn ReadAt>> {
        None
    }
}

/// The old name of [`StreamReader`].
#[deprecated(note = "renamed StreamReader: a source is a stage kind (SourceStage)")]
pub use StreamReader as StreamSource;

/// Reads at any offset, from several threads at once.
pub trait ReadAt: Send + Sync + 'static {
    /// Fills `buf` from byte `at` of the stream and returns the bytes
    /// written: fewer than `buf.len()` only at the stream's end.
    fn read_at(&self, buf: &mut [u8], at: u64) -> io::Result<usize>;
    /// The stream's length in bytes, where known when it starts (a
    /// regular file's size): a paced stream under drop-oldest may then
    /// drop whole chunks it has not read.
    fn known_len(&self) -> Option<u64> {
        None
    }
}

/// A stream's output, written on its own thread.
pub trait StreamSink: Send + 'static {
    /// Takes one chunk's output: whole elements of the sink's type, in
    /// stream order, aligned for that type.
    fn write_chunk(&mut self, chunk: &[u8]) -> io::Result<()>;
    /// The stream ended (flush here).
    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn elem(&self) -> Option<ElemType> {
        None
    }
}

impl<S: StreamReader + ?Sized> StreamReader for Box<S> {
    fn fill(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (**self).fill(buf)
    }
    fn elem(&self) -> Option<ElemType> {
        (**self).elem()
    }
    fn positional(&self) -> Option<std::sync::Arc<dyn ReadAt>> {
        (**self).positional()
    }
}

impl<S: StreamSink + ?Sized> StreamSink for Box<S> {
    fn write_chunk(&mut self, chunk: &[u8]) -> io::Result<()> {
        (**self).write_chunk(chunk)
    }
    fn finish(&mut self) -> io::Result<()> {
        (**self).finish()
    }
    fn elem(&self) -> Option<ElemType> {
        (**self).elem()
    }
}

/// Little-endian elements from any reader (a file, standard input, a socket).
pub struct ReadSource<R>(pub R);

impl<R: Read + Send + 'static> StreamReader for ReadSource<R> {
    fn fill(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            match self.0.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }
}

/// Elements from an iterator of vectors of any length (a channel's
/// receiver is one: [`from_channel`]), regrouped into the pipeline's chunks.
pub struct IterSource<T, I> {
    iter: I,
    /// The current vector and how much of it was taken.
    pending: Vec<T>,
    taken: usize,
}

/// A source from an iterator of element vectors.
pub fn from_iter<T: Element, I: IntoIterator<Item = Vec<T>>>(iter: I) -> IterSource<T, I::IntoIter>
where
    I::IntoIter: Send + 'static,
{
    IterSource { iter: iter.into_iter(), pending: Vec::new(), taken: 0 }
}

/// A source from a channel of element vectors; the stream ends when every
/// sender is dropped.
pub fn from_channel<T: Element>(rx: Receiver<Vec<T>>) -> IterSource<T, std::sync::mpsc::IntoIter<Vec<T>>> {
    from_iter(rx)
}

impl<T: Element, I: Iterator<Item = Vec<T>> + Send + 'static> StreamReader for IterSource<T, I> {
    fn fill(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            if self.taken == self.pending.len() {
                match self.iter.next() {
                    Some(v) => (self.pending, self.taken) = (v, 0),
                    None => break,
                }
                continue;
            }
            let bytes = &as_bytes(&self.pending[self.taken..]);
            // Whole elements only: a chunk holds whole elements.
            let size = std::mem::size_of::<T>();
            let k = bytes.len().min((buf.len() - n) / size * size);
            if k == 0 {
                break;
            }
            buf[n..n + k].copy_from_slice(&bytes[..k]);
            n += k;
            self.taken += k / size;
        }
        Ok(n)
    }
    fn elem(&self) -> Option<ElemType> {
        Some(ElemType::of::<T>())
    }
}

/// A regular file read with several positional reads at once: each chunk
/// in pieces of at least 256 KiB on rayon's pool, and (in a stream) several
/// chunks at once ([`StreamReader::positional`]). One thread copies from
/// the page cache at a few GB/s, far below a GPU's host link.
pub struct FileSource {
    file: std::sync::Arc<FilePieces>,
    pos: u64,
}

/// A file and its byte offset 0 for the stream, read in pieces.
struct FilePieces {
    file: std::fs::File,
    origin: u64,
    threads: usize,
}

impl FileSource {
    /// Reads `file` from its start with up to `threads` pieces per chunk.
    pub fn new(file: std::fs::File, threads: usize) -> FileSource {
        FileSource { file: std::sync::Arc::new(FilePieces { file, origin: 0, threads: threads.max(1) }), pos: 0 }
    }
}

/// Fills `buf` from `file` at `at` (fewer bytes only at the end of the file).
fn read_full_at(file: &std::fs::File, mut buf: &mut [u8], mut at: u64) -> io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let mut n = 0;
    while !buf.is_empty() {
        match file.read_at(buf, at) {
            Ok(0) => break,
            Ok(k) => {
                (n, at, buf) = (n + k, at + k as u64, &mut buf[k..]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The smallest piece a file read or write is split into: below it, the
/// pool's hand-off costs more than a second thread gains.
const MIN_PIECE: usize = 256 << 10;

impl ReadAt for FilePieces {
    fn known_len(&self) -> Option<u64> {
        self.file.metadata().ok().filter(|m| m.is_file()).map(|m| m.len().saturating_sub(self.origin))
    }
    fn read_at(&self, buf: &mut [u8], at: u64) -> io::Result<usize> {
        use rayon::prelude::*;
        let piece = buf.len().div_ceil(self.threads).max(MIN_PIECE);
        let pos = at.checked_add(self.origin).ok_or_else(|| io::Error::other("a file offset past 2^64"))?;
        let file = &self.file;
        if buf.len() <= piece {
            // One piece: read on this thread, no hand-off to the pool.
            return read_full_at(file, buf, pos);
        }
        // On rayon's pool: no thread is started per chunk.
        let got: Vec<io::Result<usize>> = buf.par_chunks_mut(piece).enumerate().map(|(i, b)| read_full_at(file, b, pos + (i * piece) as u64)).collect();
        // The bytes up to the first short piece (the file's end).
        let mut n = 0;
        for (i, r) in got.into_iter().enumerate() {
            let k = r?;
            n += k;
            if k < piece.min(buf.len() - i * piece) {
                break;
            }
        }
        Ok(n)
    }
}

impl StreamReader for FileSource {
    fn fill(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
    fn positional(&self) -> Option<std::sync::Arc<dyn ReadAt>> {
        // From the current position on (0 unless `fill` was called).
        let f = &self.file;
        if self.pos == 0 {
            return Some(f.clone());
        }
        // No second handle: read in order through `fill`.
        let file = f.file.try_clone().ok()?;
        Some(std::sync::Arc::new(FilePieces { file, origin: f.origin + self.pos, threads: f.threads }))
    }
}

/// Output bytes to any writer (a file, standard output).
pub struct WriteSink<W>(pub W);

impl<W: Write + Send + 'static> StreamSink for WriteSink<W> {
    fn write_chunk(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.0.write_all(chunk)
    }
    fn finish(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// A regular file written with several positional writes at once (the
/// counterpart of [`FileSource`]).
pub struct FileSink {
    file: std::fs::File,
    pos: u64,
    threads: usize,
}

impl FileSink {
    /// Writes into `file` from its start with `threads` writers per chunk.
    pub fn new(file: std::fs::File, threads: usize) -> FileSink {
        FileSink { file, pos: 0, threads: threads.max(1) }
    }
}

impl StreamSink for FileSink {
    fn write_chunk(&mut self, chunk: &[u8]) -> io::Result<()> {
        use rayon::prelude::*;
        use std::os::unix::fs::FileExt;
        let piece = chunk.len().div_ceil(self.threads).max(MIN_PIECE);
        let (file, pos) = (&self.file, self.pos);
        chunk.par_chunks(piece).enumerate().try_for_each(|(i, b)| file.write_all_at(b, pos + (i * piece) as u64))?;
        self.pos += chunk.len() as u64;
        Ok(())
    }
    fn finish(&mut self) -> io::Result<()> {
        self.file.set_len(self.pos)
    }
}

/// Each chunk's elements handed to a callback.
pub struct FnSink<T, F> {
    f: F,
    _t: std::marker::PhantomData<fn(&[T])>,
}

/// A sink calling `f` with each chunk's output elements, in order.
pub fn to_fn<T: Element, F: FnMut(&[T]) + Send + 'static>(f: F) -> FnSink<T, F> {
    FnSink { f, _t: std::marker::PhantomData }
}

impl<T: Element, F: FnMut(&[T]) + Send + 'static> StreamSink for FnSink<T, F> {
    fn write_chunk(&mut self, chunk: &[u8]) -> io::Result<()> {
        let size = std::mem::size_of::<T>();
        if !chunk.len().is_multiple_of(size) || !(chunk.as_ptr() as usize).is_multiple_of(std::mem::align_of::<T>()) {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "a chunk that is not whole aligned elements"));
        }
        // SAFETY: aligned (checked), `len / size` whole elements, and any
        // bits are a valid `T` (Element).
        let v = unsafe { std::slice::from_raw_parts(chunk.as_ptr() as *const T, chunk.len() / size) };
        (self.f)(v);
        Ok(())
    }
    fn elem(&self) -> Option<ElemType> {
        Some(ElemType::of::<T>())
    }
}

/// A sink sending each chunk's elements into a channel; a bounded channel
/// gives backpressure (the pipeline waits while it is full).
pub fn to_channel<T: Element>(tx: SyncSender<Vec<T>>) -> FnSink<T, impl FnMut(&[T]) + Send + 'static> {
    // A receiver that went away ends the stream's output; the pipeline
    // then reports what it delivered.
    to_fn(move |v: &[T]| {
        let _ = tx.send(v.to_vec());
    })
}

/// A sink that keeps nothing (the run still verifies every chunk when asked).
pub struct Discard;

impl StreamSink for Discard {
    fn write_chunk(&mut self, _: &[u8]) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iter_source_regroups_whole_elements() {
        let mut s = from_iter(vec![vec![1u32, 2, 3], vec![], vec![4, 5]]);
        let mut buf = [0u8; 8];
        assert_eq!(s.fill(&mut buf).unwrap(), 8);
        assert_eq!(buf, [1, 0, 0, 0, 2, 0, 0, 0]);
        assert_eq!(s.fill(&mut buf).unwrap(), 8);
        assert_eq!(buf, [3, 0, 0, 0, 4, 0, 0, 0]);
        assert_eq!(s.fill(&mut buf).unwrap(), 4);
        assert_eq!(s.fill(&mut buf).unwrap(), 0);
        // A buffer smaller than one element takes nothing rather than half of one.
        let mut s = from_iter(vec![vec![7u64]]);
        assert_eq!(s.fill(&mut [0u8; 4]).unwrap(), 0);
    }

    #[test]
    fn read_source_fills_across_short_reads() {
        struct Dribble(Vec<u8>);
        impl Read for Dribble {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0.is_empty() || buf.is_empty() {
                    return Ok(0);
                }
                buf[0] = self.0.remove(0);
                Ok(1)
            }
        }
        let mut s = ReadSource(Dribble((0..10).collect()));
        let mut buf = [0u8; 4];
        assert_eq!((s.fill(&mut buf).unwrap(), buf), (4, [0, 1, 2, 3]));
        assert_eq!(s.fill(&mut buf).unwrap(), 4);
        assert_eq!((s.fill(&mut buf).unwrap(), &buf[..2]), (2, &[8u8, 9][..]));
    }

    #[test]
    fn file_source_and_sink_in_parallel_pieces() {
        let dir = std::env::temp_dir().join(format!("pc-file-io-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let data: Vec<u8> = (0..(5u32 << 20) + 3).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(dir.join("in"), &data).unwrap();
        let mut src = FileSource::new(std::fs::File::open(dir.join("in")).unwrap(), 4);
        let mut sink = FileSink::new(std::fs::File::create(dir.join("out")).unwrap(), 3);
        let mut buf = vec![0u8; 3 << 20];
        let mut total = 0;
        loop {
            let n = src.fill(&mut buf).unwrap();
            assert_eq!(&buf[..n], &data[total..total + n]);
            sink.write_chunk(&buf[..n]).unwrap();
            total += n;
            if n < buf.len() {
                break;
            }
        }
        sink.finish().unwrap();
        assert_eq!(total, data.len());
        assert_eq!(std::fs::read(dir.join("out")).unwrap(), data);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn fn_sink_refuses_partial_elements() {
        let mut got = Vec::new();
        let (tx, rx) = std::sync::mpsc::sync_channel(4);
        let mut s = to_channel::<u32>(tx);
        s.write_chunk(as_bytes(&[5u32, 6])).unwrap();
        got.extend(rx.recv().unwrap());
        assert_eq!(got, [5, 6]);
        let words = [0u32; 2];
        assert!(s.write_chunk(&as_bytes(&words)[..3]).is_err());
    }
}
