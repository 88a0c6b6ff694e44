//! Listings and status: `LIST`, `NLST`, `MLSD`, `MLST`, `STAT`, and the service commands
//! that describe the server (`FEAT`, `OPTS`).

use crate::command::{ListArgs, OptsArg};
use crate::config::TlsMode;
use crate::event::{DataChannel, ListFormat, ListRequest, StorageOp, TransferKind};
use crate::limits::MAX_PATTERN;
use crate::listing::{Facts, is_pattern};
use crate::path::VirtualPath;
use crate::reply::{Reply, Status};
use crate::text::Text;

use super::Session;
use super::state::{DataEndpoint, Phase, Role, StorageCall};

impl Session {
    /// `LIST` and `NLST`: a folder, a file, or a `*`/`?` pattern in the last segment (over
    /// its folder).
    pub(super) fn list(&mut self, args: ListArgs<'_>, format: ListFormat) {
        let arg = args.path.unwrap_or("");
        let cut = arg.rfind(['/', '\\']).map_or(0, |i| i + 1);
        let (dir, last) = arg.split_at(cut);
        let (dir_arg, pattern) = if is_pattern(last) && last.len() <= MAX_PATTERN {
            (dir, Some(last))
        } else {
            (arg, None)
        };
        let Some(path) = self.resolve(dir_arg) else {
            return;
        };
        // NLST names entries as the client typed their folder.
        let typed = match dir_arg.trim_end_matches(['/', '\\']) {
            "" if dir_arg.is_empty() => None,
            "" => Some("/"),
            t => Some(t),
        };
        let request = self.list_request(path, format, pattern, typed);
        self.transfer(TransferKind::List(request), Role::Listing);
    }

    /// `MLSD`.
    pub(super) fn mlsd(&mut self, path: Option<&str>) {
        if let Some(p) = self.resolve(path.unwrap_or("")) {
            let request = self.list_request(p, ListFormat::Machine(self.facts), None, None);
            self.transfer(TransferKind::List(request), Role::Listing);
        }
    }

    /// `MLST`: the facts of one path, on the control connection.
    pub(super) fn mlst(&mut self, path: Option<&str>) {
        if let Some(p) = self.resolve(path.unwrap_or("")) {
            self.storage(StorageOp::Metadata(p.clone()), StorageCall::Facts(p));
        }
    }

    /// `STAT` with a path: a listing as the body of a 213 reply on the control connection.
    pub(super) fn stat_path(&mut self, path: &str) {
        if let Some(p) = self.resolve(path) {
            let request = self.list_request(p, ListFormat::Long, None, None);
            let kind = TransferKind::List(request);
            self.start_transfer(kind, DataChannel::Control, Role::StatusBody);
        }
    }

    /// `STAT` without a path: the session's state.
    pub(super) fn status(&mut self) {
        let user = match &self.phase {
            Phase::LoggedIn { user, .. } => Some(user.clone()),
            _ => None,
        };
        let data = match self.data {
            DataEndpoint::None => "no data connection set up",
            DataEndpoint::Passive => "passive mode",
            DataEndpoint::Active(_) => "active mode",
        };
        self.reply(Reply::status(Status {
            user,
            ascii: self.ascii,
            tls: self.security.is_tls(),
            protected: self.security.is_private(),
            data,
        }));
    }

    /// `FEAT`.
    pub(super) fn feat(&mut self) {
        let tls = self.config.tls != TlsMode::Off;
        self.reply(Reply::features(tls, self.facts));
    }

    /// `OPTS UTF8`, `OPTS MLST`.
    pub(super) fn opts(&mut self, arg: OptsArg<'_>) {
        match arg {
            OptsArg::Utf8(true) => self.reply(Reply::UTF8_ON),
            OptsArg::Utf8(false) => self.reply(Reply::UTF8_OFF_REFUSED),
            OptsArg::Mlst(list) => {
                self.facts = Facts::parse(list);
                self.reply(Reply::mlst_opts(self.facts));
            }
        }
    }

    fn list_request(
        &self,
        path: VirtualPath,
        format: ListFormat,
        pattern: Option<&str>,
        typed: Option<&str>,
    ) -> ListRequest {
        ListRequest {
            path,
            format,
            pattern: pattern.and_then(|p| Text::try_from(p).ok()),
            typed: typed.and_then(|t| Text::try_from(t).ok()),
            writable: !self.read_only(),
        }
    }
}
