//! Files and folders: `CWD`, `CDUP`, `MKD`, `RMD`, `DELE`, `RNFR`/`RNTO`, `SIZE`, `MDTM`,
//! `MFMT`, `SITE` (`CPFR`/`CPTO`, `CHMOD`, `HELP`), each a storage call whose result
//! becomes the reply (`PWD` is answered from the session's own state).

use crate::command::SiteCommand;
use crate::event::StorageOp;
use crate::outcome::StorageReply;
use crate::reply::Reply;
use crate::storage::{FileKind, StorageError};
use crate::time::{DateTime, UnixTime};

use super::Session;
use super::state::{Selected, StorageCall};

impl Session {
    /// `CWD`: to a folder that exists.
    pub(super) fn cwd_to(&mut self, path: &str) {
        if let Some(p) = self.resolve(path) {
            self.storage(StorageOp::Metadata(p.clone()), StorageCall::ChangeDir(p));
        }
    }

    /// `CDUP`: to the parent (the root's parent is the root).
    pub(super) fn cdup(&mut self) {
        let p = self.cwd.parent();
        self.storage(StorageOp::Metadata(p.clone()), StorageCall::ChangeDir(p));
    }

    /// `MKD`.
    pub(super) fn mkd(&mut self, path: &str) {
        if let Some(p) = self.resolve_for_change(path) {
            self.storage(StorageOp::MakeDir(p.clone()), StorageCall::MakeDir(p));
        }
    }

    /// `RMD`.
    pub(super) fn rmd(&mut self, path: &str) {
        if let Some(p) = self.resolve_for_change(path) {
            if p.is_root() {
                self.reply(Reply::ROOT_NOT_REMOVED);
            } else {
                self.storage(StorageOp::RemoveDir(p), StorageCall::RemoveDir);
            }
        }
    }

    /// `DELE`.
    pub(super) fn dele(&mut self, path: &str) {
        if let Some(p) = self.resolve_for_change(path) {
            self.storage(StorageOp::RemoveFile(p), StorageCall::Delete);
        }
    }

    /// `RNFR`: the source must exist.
    pub(super) fn rnfr(&mut self, path: &str) {
        if let Some(p) = self.resolve_for_change(path) {
            if p.is_root() {
                self.reply(Reply::ROOT_NOT_RENAMED);
            } else {
                self.storage(StorageOp::Metadata(p.clone()), StorageCall::RenameFrom(p));
            }
        }
    }

    /// `RNTO`, right after `RNFR`.
    pub(super) fn rnto(&mut self, path: &str, selected: Option<Selected>) {
        let Some(Selected::RenameFrom(from)) = selected else {
            self.reply(Reply::RNFR_FIRST);
            return;
        };
        if let Some(to) = self.resolve_for_change(path) {
            self.storage(StorageOp::Rename { from, to }, StorageCall::Rename);
        }
    }

    /// `SIZE`.
    pub(super) fn size(&mut self, path: &str) {
        if let Some(p) = self.resolve(path) {
            self.storage(StorageOp::Metadata(p), StorageCall::Size);
        }
    }

    /// `MDTM`.
    pub(super) fn mdtm(&mut self, path: &str) {
        if let Some(p) = self.resolve(path) {
            self.storage(StorageOp::Metadata(p), StorageCall::ModificationTime);
        }
    }

    /// `MFMT time path`.
    pub(super) fn mfmt(&mut self, time: DateTime, path: &str) {
        if let Some(p) = self.resolve_for_change(path) {
            let op = StorageOp::SetModified {
                path: p.clone(),
                time: time.to_unix(),
            };
            self.storage(op, StorageCall::SetTime(time, p));
        }
    }

    /// `SITE CPFR`, `SITE CPTO`, `SITE CHMOD`, `SITE HELP`.
    pub(super) fn site(&mut self, site: SiteCommand<'_>, selected: Option<Selected>) {
        match site {
            SiteCommand::Help(_) => self.reply(Reply::SITE_HELP),
            SiteCommand::Cpfr(path) => {
                if let Some(p) = self.resolve_for_change(path) {
                    self.storage(StorageOp::Metadata(p.clone()), StorageCall::CopyFrom(p));
                }
            }
            SiteCommand::Cpto(path) => {
                let Some(Selected::CopyFrom(from)) = selected else {
                    self.reply(Reply::CPFR_FIRST);
                    return;
                };
                if let Some(to) = self.resolve_for_change(path) {
                    self.storage(StorageOp::Copy { from, to }, StorageCall::Copy);
                }
            }
            SiteCommand::Chmod { mode, path } => {
                let Some(p) = self.resolve_for_change(path) else {
                    return;
                };
                if p.is_root() {
                    self.reply(Reply::ROOT_NOT_CHANGED);
                } else {
                    self.storage(StorageOp::SetMode { path: p, mode }, StorageCall::Chmod);
                }
            }
        }
    }

    /// A storage call's result, as the reply to the command that asked for it.
    pub(super) fn storage_done(
        &mut self,
        call: StorageCall,
        result: Result<StorageReply, StorageError>,
    ) {
        let meta = match result {
            Err(e) => {
                self.reply(Reply::storage_error(e, false));
                return;
            }
            Ok(StorageReply::Metadata(m)) => Some(m),
            Ok(StorageReply::Done) => None,
        };
        // A call that asked for metadata and got none: the runtime broke the contract.
        let missing = || Reply::storage_error(StorageError::Other, false);
        let reply = match call {
            StorageCall::MakeDir(path) => Reply::created(path),
            StorageCall::Delete => Reply::DELETED,
            StorageCall::RemoveDir => Reply::DIR_REMOVED,
            StorageCall::Rename => Reply::RENAMED,
            StorageCall::Copy => Reply::COPIED,
            StorageCall::Chmod => Reply::CHMOD_OK,
            StorageCall::RenameFrom(path) => {
                self.selected = Some(Selected::RenameFrom(path));
                Reply::READY_FOR_RNTO
            }
            // Report the time storage kept (a file system may clamp it), when it says.
            StorageCall::SetTime(time, path) => {
                let kept = meta.and_then(|m| m.modified);
                Reply::modified(kept.map_or(time, UnixTime::to_datetime), path)
            }
            StorageCall::ChangeDir(path) => match meta {
                Some(m) if m.is_dir() => {
                    self.cwd = path;
                    Reply::DIR_CHANGED
                }
                Some(_) => Reply::storage_error(StorageError::NotADirectory, false),
                None => missing(),
            },
            StorageCall::CopyFrom(path) => match meta {
                // A folder is copied with everything in it.
                Some(m) if matches!(m.kind, FileKind::File | FileKind::Dir) => {
                    self.selected = Some(Selected::CopyFrom(path));
                    Reply::READY_FOR_CPTO
                }
                Some(_) => Reply::storage_error(StorageError::NotAFile, false),
                None => missing(),
            },
            StorageCall::Size => match meta {
                Some(m) if m.kind == FileKind::File => Reply::size(m.size),
                Some(_) => Reply::storage_error(StorageError::NotAFile, false),
                None => missing(),
            },
            StorageCall::ModificationTime => match meta.map(|m| m.modified) {
                Some(Some(t)) => Reply::modification_time(t.to_datetime()),
                Some(None) => Reply::MTIME_UNKNOWN,
                None => missing(),
            },
            StorageCall::Facts(path) => match meta {
                Some(m) => Reply::facts(path, m, self.facts, !self.read_only()),
                None => missing(),
            },
        };
        self.reply(reply);
    }
}
