//! Storing a worktree file the way `git add` would.
//!
//! A snapshot must hold what the user's own `git add` would have stored, or the user's tree
//! is dirty right after a clean merge. So every file goes through gix's filter pipeline:
//! `.gitattributes`, read from the worktree first as git does (the agent may have changed
//! it), decide on end-of-line conversion (`text`, `eol`, `core.autocrlf`), `ident`,
//! `working-tree-encoding` and `filter=<driver>`, whose `clean` or `process` command (git-lfs)
//! runs as configured. A failing driver stops the snapshot when it is `required`; otherwise
//! the file is stored without it, with a warning, like git does.
//!
//! Content is streamed into the object database: memory stays bounded by small buffers, not
//! by the file's size, for unconverted files and for `process` drivers such as git-lfs.
//! End-of-line, `ident` and encoding conversions and single-file `clean` drivers need the
//! whole file in memory (in gix as in git).
//!
//! This module never writes an index or a ref.

use std::io::{Read, Seek, Write};
use std::path::Path;

use gix::bstr::{BStr, ByteSlice};
use gix::filter::plumbing::Driver;
use gix::filter::plumbing::pipeline::convert::ToGitOutcome;
use gix::objs::tree::EntryKind;
use gix::objs::{Find as _, Write as _};

use super::{GitError, GixContext, ObjectId, causes};

/// Output of a filter kept in memory up to this size, in a temporary file beyond it.
const SPOOL_IN_MEMORY: usize = 1024 * 1024;

/// Writes the blobs `git add` would write for files of one worktree.
///
/// Drivers of `process` filters are started once and kept running for all files; call
/// [`Cleaner::finish`] to stop them.
pub(crate) struct Cleaner<'repo> {
    repo: &'repo gix::Repository,
    pipeline: gix::filter::plumbing::Pipeline,
    attributes: gix::worktree::Stack,
    /// What `text=auto` compares a file with.
    indexed: Indexed<'repo>,
    /// The drivers as configured. The pipeline's copies are all marked required, so that
    /// every failure reaches us and a warning can be given where git would print one.
    drivers: Vec<Driver>,
}

/// Where a file's version known to git is found (`text=auto` leaves a file alone whose
/// known version already has CRs): the worktree's index, or the tree its checkout came from.
enum Indexed<'repo> {
    Index(Box<gix::worktree::IndexPersistedOrInMemory>),
    Tree(gix::Tree<'repo>),
}

impl Indexed<'_> {
    fn id(&self, rela_path: &BStr) -> Result<Option<ObjectId>, String> {
        match self {
            Indexed::Index(index) => Ok(index.entry_by_path(rela_path).map(|e| e.id)),
            Indexed::Tree(tree) => {
                let path = gix::path::from_bstr(rela_path).map_err(|e| e.to_string())?;
                Ok(tree
                    .lookup_entry_by_path(path.as_ref())
                    .map_err(|e| e.to_string())?
                    .map(|e| e.object_id()))
            }
        }
    }
}

/// Why a file could not be stored.
enum Failure {
    /// Conversion failed: a driver, or an end-of-line or encoding check; the reason.
    Convert(String),
    /// Reading the file or writing the object failed.
    Store(GitError),
}

impl From<GitError> for Failure {
    fn from(e: GitError) -> Failure {
        Failure::Store(e)
    }
}

impl<'repo> Cleaner<'repo> {
    /// Reads the attributes, configuration and index of the worktree opened as `repo`.
    pub(crate) fn new(repo: &'repo gix::Repository) -> Result<Cleaner<'repo>, GitError> {
        let (pipeline, index) = repo
            .filter_pipeline(None)
            .ctx(|| "cannot read the worktree's attributes and filter configuration".into())?;
        Ok(Cleaner::of(repo, pipeline, Indexed::Index(Box::new(index))))
    }

    /// Like [`Cleaner::new`] for the checkout of `tree` opened as `repo`, whose index is not
    /// read (a copy-on-write worktree's lower checkout: every file is on disk, and its index
    /// is the tree's): attributes come from the files, a file's known version from `tree`.
    pub(crate) fn for_checkout_of(
        repo: &'repo gix::Repository,
        tree: ObjectId,
    ) -> Result<Cleaner<'repo>, GitError> {
        let what = || "cannot read the worktree's attributes and filter configuration".into();
        let empty = gix::index::State::new(repo.object_hash());
        let attributes = repo
            .attributes_only(
                &empty,
                gix::worktree::stack::state::attributes::Source::WorktreeThenIdMapping,
            )
            .ctx(what)?
            .detach();
        let pipeline = gix::filter::Pipeline::new(repo, attributes).ctx(what)?;
        let tree = repo
            .find_tree(tree)
            .ctx(|| format!("cannot read tree {tree}"))?;
        Ok(Cleaner::of(repo, pipeline, Indexed::Tree(tree)))
    }

    fn of(
        repo: &'repo gix::Repository,
        pipeline: gix::filter::Pipeline<'_>,
        indexed: Indexed<'repo>,
    ) -> Cleaner<'repo> {
        let (mut pipeline, attributes) = pipeline.into_parts();
        let drivers = pipeline.options_mut().drivers.clone();
        for driver in &mut pipeline.options_mut().drivers {
            driver.required = true;
        }
        Cleaner {
            repo,
            pipeline,
            attributes,
            indexed,
            drivers,
        }
    }

    /// Writes the blob for the file at `rela_path` (`full` on disk, `meta` its
    /// `symlink_metadata`) and returns its tree entry kind and id. Symbolic links are stored
    /// as their target, unfiltered, as git does.
    pub(crate) fn store(
        &mut self,
        rela_path: &BStr,
        full: &Path,
        meta: &std::fs::Metadata,
        warnings: &mut Vec<String>,
    ) -> Result<(EntryKind, ObjectId), GitError> {
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(full).map_err(|source| GitError::Io {
                what: "cannot read a changed file",
                path: full.to_owned(),
                source,
            })?;
            let bytes = gix::path::into_bstr(target)
                .ctx(|| format!("symlink target of {} is not valid", full.display()))?
                .into_owned();
            let id = self
                .repo
                .write_blob(bytes.as_bytes())
                .ctx(|| "cannot write a blob".into())?;
            return Ok((EntryKind::Link, id.detach()));
        }
        let id = match self.store_file(rela_path, full) {
            Ok(id) => id,
            Err(Failure::Store(e)) => return Err(e),
            Err(Failure::Convert(reason)) => match self.driver_for(rela_path) {
                Some(driver) if driver.required => {
                    return Err(GitError::Filter {
                        path: rela_path.to_string(),
                        driver: driver.name.to_string(),
                        reason,
                    });
                }
                Some(driver) => {
                    warnings.push(format!(
                        "the clean filter `{}` failed on {rela_path} ({reason}); stored without \
                         it, as git does for a filter that is not required",
                        driver.name
                    ));
                    self.store_without(driver.name.as_bstr(), rela_path, full)?
                }
                None => {
                    return Err(GitError::Convert {
                        path: rela_path.to_string(),
                        reason,
                    });
                }
            },
        };
        Ok((blob_kind(meta), id))
    }

    /// Stops the drivers of `process` filters, waiting for them to exit.
    pub(crate) fn finish(self) -> Result<(), GitError> {
        self.pipeline
            .into_driver_state()
            .shutdown(gix::filter::plumbing::driver::shutdown::Mode::WaitForProcesses)
            .map_err(|e| GitError::Other(format!("cannot stop a filter process: {e}")))?;
        Ok(())
    }

    /// Stores the file with the driver `name` left out (it failed and is not required).
    fn store_without(
        &mut self,
        name: &BStr,
        rela_path: &BStr,
        full: &Path,
    ) -> Result<ObjectId, GitError> {
        let drivers = &mut self.pipeline.options_mut().drivers;
        let at = drivers.iter().position(|d| d.name == name);
        let removed = at.map(|i| drivers.remove(i));
        let stored = self.store_file(rela_path, full);
        if let (Some(i), Some(driver)) = (at, removed) {
            self.pipeline.options_mut().drivers.insert(i, driver);
        }
        stored.map_err(|failure| match failure {
            Failure::Store(e) => e,
            Failure::Convert(reason) => GitError::Convert {
                path: rela_path.to_string(),
                reason,
            },
        })
    }

    /// The configured driver that the `filter` attribute names for `rela_path`, if any.
    fn driver_for(&mut self, rela_path: &BStr) -> Option<Driver> {
        let mut matches = self.attributes.selected_attribute_matches(["filter"]);
        let platform = self
            .attributes
            .at_path(rela_path, None, &self.repo.objects)
            .ok()?;
        platform.matching_attributes(&mut matches);
        let name = matches
            .iter_selected()
            .find_map(|m| match m.assignment.state {
                gix::attrs::StateRef::Value(v) => Some(v.as_bstr().to_owned()),
                _ => None,
            })?;
        self.drivers.iter().find(|d| d.name == name).cloned()
    }

    fn store_file(&mut self, rela_path: &BStr, full: &Path) -> Result<ObjectId, Failure> {
        let io = |source| GitError::Io {
            what: "cannot read a changed file",
            path: full.to_owned(),
            source,
        };
        let mut file = std::fs::File::open(full).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let rela = gix::path::from_bstr(rela_path)
            .ctx(|| format!("path {rela_path} is not valid here"))?;
        let Cleaner {
            repo,
            pipeline,
            attributes,
            indexed,
            ..
        } = self;
        let repo: &gix::Repository = repo;
        let platform = attributes
            .at_path(rela_path, None, &repo.objects)
            .map_err(|e| Failure::Convert(format!("cannot read its attributes: {e}")))?;
        let converted = pipeline.convert_to_git(
            &mut file,
            rela.as_ref(),
            &mut |_, out| {
                platform.matching_attributes(out);
            },
            // `text=auto` leaves a file alone whose indexed version already has CRs.
            &mut |buf| {
                let id = indexed
                    .id(rela_path)
                    .map_err(|e| gix::Error::from_error(std::io::Error::other(e)))?;
                let Some(id) = id else {
                    return Ok(None);
                };
                let object = repo.objects.try_find(&id, buf)?;
                Ok(object
                    .filter(|o| o.kind == gix::objs::Kind::Blob)
                    .map(|_| ()))
            },
        );
        let store_err = |e: gix::Error| {
            Failure::Store(GitError::Gix {
                what: format!("cannot store {rela_path}"),
                source: Box::new(e),
            })
        };
        match converted.map_err(|e| Failure::Convert(causes(&e)))? {
            ToGitOutcome::Unchanged(file) => {
                let mut sized = Sized::new(file, len);
                match repo
                    .objects
                    .write_stream(gix::objs::Kind::Blob, len, &mut sized)
                {
                    Ok(id) => Ok(id),
                    // It changed while being read: store what it holds now, through a copy.
                    Err(_) if sized.mismatch => {
                        let file = sized.inner;
                        file.rewind().map_err(io)?;
                        let spooled = spool(file, repo.git_dir())?;
                        spooled.write(repo).map_err(store_err)
                    }
                    Err(e) => Err(store_err(e)),
                }
            }
            ToGitOutcome::Buffer(buf) => repo
                .write_blob(buf)
                .map(|id| id.detach())
                .map_err(store_err),
            ToGitOutcome::Process(output) => {
                let spooled = spool(output, repo.git_dir())?;
                spooled.write(repo).map_err(store_err)
            }
        }
    }
}

/// A filter's output of unknown size, kept until it is complete.
enum Spooled {
    Memory(Vec<u8>),
    File(std::fs::File, u64),
}

/// Reads `from` to its end, into memory up to [`SPOOL_IN_MEMORY`] and into an unnamed
/// temporary file in `dir` beyond. A read error is the filter's failure.
fn spool(mut from: impl Read, dir: &Path) -> Result<Spooled, Failure> {
    let read_err = |e: std::io::Error| Failure::Convert(causes(&e));
    let mut buf = Vec::new();
    (&mut from)
        .take(SPOOL_IN_MEMORY as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(read_err)?;
    if buf.len() <= SPOOL_IN_MEMORY {
        return Ok(Spooled::Memory(buf));
    }
    let write_err = |source| GitError::Io {
        what: "cannot write a temporary file",
        path: dir.to_owned(),
        source,
    };
    let mut file = tempfile::tempfile_in(dir).map_err(write_err)?;
    file.write_all(&buf).map_err(write_err)?;
    let mut len = buf.len() as u64;
    buf.resize(64 * 1024, 0);
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_err(e)),
        };
        file.write_all(&buf[..n]).map_err(write_err)?;
        len += n as u64;
    }
    file.rewind().map_err(write_err)?;
    Ok(Spooled::File(file, len))
}

impl Spooled {
    fn write(self, repo: &gix::Repository) -> Result<ObjectId, gix::Error> {
        match self {
            Spooled::Memory(buf) => repo.write_blob(&buf).map(|id| id.detach()),
            Spooled::File(file, len) => {
                repo.objects
                    .write_stream(gix::objs::Kind::Blob, len, &mut Sized::new(file, len))
            }
        }
    }
}

/// A reader that yields exactly `len` bytes of `inner` or fails: a loose object's header
/// states its size before the content is streamed, so a file that shrinks or grows while
/// it is read must not be stored.
struct Sized<R> {
    inner: R,
    remaining: u64,
    /// Set when `inner` turned out shorter or longer than announced.
    mismatch: bool,
}

impl<R: Read> Sized<R> {
    fn new(inner: R, len: u64) -> Sized<R> {
        Sized {
            inner,
            remaining: len,
            mismatch: false,
        }
    }
}

impl<R: Read> Read for Sized<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.remaining == 0 {
            // Announced size reached: the source must be at its end too.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => {
                    self.mismatch = true;
                    Err(std::io::Error::other("the file grew while it was stored"))
                }
            };
        }
        let max = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            self.mismatch = true;
            return Err(std::io::Error::other("the file shrank while it was stored"));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

#[cfg(unix)]
fn blob_kind(meta: &std::fs::Metadata) -> EntryKind {
    use std::os::unix::fs::PermissionsExt;
    if meta.permissions().mode() & 0o111 != 0 {
        EntryKind::BlobExecutable
    } else {
        EntryKind::Blob
    }
}

#[cfg(not(unix))]
fn blob_kind(_meta: &std::fs::Metadata) -> EntryKind {
    EntryKind::Blob
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(r: &mut impl Read) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        r.read_to_end(&mut out).map(|_| out)
    }

    #[test]
    fn sized_reader_yields_exactly_the_announced_bytes() {
        let mut r = Sized::new(&b"hello"[..], 5);
        assert_eq!(read_all(&mut r).unwrap(), b"hello");
        assert!(!r.mismatch);
    }

    #[test]
    fn sized_reader_fails_on_a_shorter_or_longer_source() {
        let mut short = Sized::new(&b"hell"[..], 5);
        assert!(read_all(&mut short).is_err());
        assert!(short.mismatch);
        let mut long = Sized::new(&b"hello!"[..], 5);
        assert!(read_all(&mut long).is_err());
        assert!(long.mismatch);
    }

    #[test]
    fn spool_keeps_small_output_in_memory_and_large_output_in_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let Ok(Spooled::Memory(small)) = spool(&b"pointer"[..], dir.path()) else {
            panic!("small output is kept in memory");
        };
        assert_eq!(small, b"pointer");
        let big = vec![7u8; SPOOL_IN_MEMORY + 10];
        let Ok(Spooled::File(mut file, len)) = spool(&big[..], dir.path()) else {
            panic!("large output goes to a file");
        };
        assert_eq!(len, big.len() as u64);
        assert_eq!(read_all(&mut file).unwrap(), big);
    }
}
