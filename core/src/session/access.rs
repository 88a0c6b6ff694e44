//! Access and TLS negotiation: `USER`, `PASS`, `REIN`, `QUIT`, `AUTH`, `PBSZ`, `PROT`, the
//! password check's outcome, and the growing delay after a failed login.

use crate::command::{AuthMechanism, ProtLevel};
use crate::config::TlsMode;
use crate::event::{Password, Request, UserName};
use crate::framing::Framer;
use crate::listing::Facts;
use crate::outcome::{LoginError, LoginInfo};
use crate::path::VirtualPath;
use crate::reply::Reply;
use crate::secret::Secret;
use crate::time::Instant;

use super::state::{Pending, Phase, Security};
use super::{Consumed, Session};

/// Longest failed-login delay, as a power of two of the first: 1 s doubles to at most 32 s.
const MAX_DELAY_DOUBLINGS: u32 = 5;

impl Session {
    /// `USER` before login.
    pub(super) fn user_named(&mut self, name: &str) {
        if self.config.tls == TlsMode::Required && !self.security.is_tls() {
            self.reply(Reply::TLS_BEFORE_USER);
        } else if name.bytes().any(|b| b < 0x20 || b == 0x7f) {
            self.reply(Reply::BAD_USER_NAME);
        } else if let Ok(user) = UserName::try_from(name) {
            self.phase = Phase::NeedPass(user);
            self.reply(Reply::PASSWORD_NEEDED);
        } else {
            self.reply(Reply::USER_NAME_TOO_LONG);
        }
    }

    /// `PASS` before login: asks the runtime to check it.
    pub(super) fn pass(&mut self, password: &str) {
        let Phase::NeedPass(user) = &self.phase else {
            self.reply(Reply::USER_FIRST);
            return;
        };
        let user = user.clone();
        match Password::try_from(password) {
            Ok(password) => {
                let id = self.next_id();
                self.pending = Pending::Login(id);
                self.request(Request::CheckLogin {
                    id,
                    user,
                    password: Secret::new(password),
                });
            }
            Err(_) => {
                self.phase = Phase::NeedUser;
                self.reply(Reply::PASSWORD_TOO_LONG);
            }
        }
    }

    /// The password check's outcome.
    pub(super) fn login_checked(&mut self, result: Result<LoginInfo, LoginError>, now: Instant) {
        self.pending = Pending::None;
        let user = match core::mem::replace(&mut self.phase, Phase::NeedUser) {
            Phase::NeedPass(user) => user,
            other => {
                self.phase = other;
                return;
            }
        };
        match result {
            Ok(info) => {
                self.phase = Phase::LoggedIn {
                    user,
                    read_only: info.read_only,
                };
                self.cwd = VirtualPath::root();
                self.failures = 0;
                self.touch(now);
                self.reply(Reply::LOGGED_IN);
            }
            Err(e @ (LoginError::Unavailable | LoginError::TooManySessions)) => {
                self.touch(now);
                self.reply(if e == LoginError::Unavailable {
                    Reply::LOGIN_UNAVAILABLE
                } else {
                    Reply::TOO_MANY_SESSIONS
                });
                self.close();
            }
            Err(LoginError::Rejected) => {
                self.failures = self.failures.saturating_add(1);
                let doublings = (self.failures - 1).min(MAX_DELAY_DOUBLINGS);
                let delay = self
                    .config
                    .login_failure_delay
                    .saturating_mul(1 << doublings);
                let close = self.failures >= self.config.max_login_failures;
                self.pending = Pending::LoginDelay {
                    until: now.saturating_add(delay),
                    close,
                };
                // A zero delay answers at once.
                self.handle_timeout(now);
            }
        }
    }

    /// The delay after a failed login is over: answer 530 (and close after the last
    /// failure allowed).
    pub(super) fn login_delay_over(&mut self, close: bool, now: Instant) {
        self.pending = Pending::None;
        self.reply(Reply::LOGIN_INCORRECT);
        if close {
            self.reply(Reply::TOO_MANY_FAILURES);
            self.close();
        }
        self.touch(now);
    }

    /// `REIN`: back to the state of a new connection (TLS stays as it is).
    pub(super) fn rein(&mut self) {
        self.close_passive();
        self.phase = Phase::NeedUser;
        self.cwd = VirtualPath::root();
        self.ascii = true;
        self.epsv_all = false;
        self.facts = Facts::ALL;
        self.reply(Reply::READY_FOR_NEW_USER);
    }

    /// `QUIT` with no transfer running.
    pub(super) fn quit(&mut self) {
        self.reply(Reply::GOODBYE);
        self.close();
    }

    /// `AUTH TLS` (or `SSL`): 234, then the runtime runs the handshake. Plain-text bytes
    /// behind it are discarded, never run after the handshake (STARTTLS command injection).
    pub(super) fn auth(&mut self, mech: AuthMechanism) -> Consumed {
        self.selected = None;
        self.rest = None;
        if self.config.tls == TlsMode::Off {
            self.reply(Reply::TLS_NOT_CONFIGURED);
        } else if self.security.is_tls() {
            self.reply(Reply::TLS_ALREADY_ACTIVE);
        } else if matches!(self.phase, Phase::LoggedIn { .. }) {
            self.reply(Reply::AUTH_AFTER_LOGIN);
        } else {
            self.reply(match mech {
                AuthMechanism::Tls => Reply::AUTH_TLS_OK,
                AuthMechanism::Ssl => Reply::AUTH_SSL_OK,
            });
            self.phase = Phase::NeedUser;
            self.pending = Pending::Tls;
            self.request(Request::StartTls);
            return Consumed::AllInput;
        }
        Consumed::Line
    }

    /// The control connection's handshake is done.
    pub(super) fn tls_established(&mut self, now: Instant) {
        if self.pending == Pending::Tls {
            self.pending = Pending::None;
            self.security = Security::Tls;
            self.framer = Framer::new();
            self.touch(now);
        }
    }

    /// The control connection's handshake failed: the connection is unusable.
    pub(super) fn tls_failed(&mut self) {
        if self.pending == Pending::Tls {
            self.pending = Pending::None;
            self.close();
        }
    }

    /// `PBSZ` (only 0 makes sense with TLS).
    pub(super) fn pbsz(&mut self) {
        match self.security {
            Security::Plain => self.reply(Reply::PBSZ_WITHOUT_TLS),
            Security::Tls => {
                self.security = Security::TlsDataClear;
                self.reply(Reply::PBSZ_OK);
            }
            Security::TlsDataClear | Security::TlsDataPrivate => self.reply(Reply::PBSZ_OK),
        }
    }

    /// `PROT`: whether data connections run TLS.
    pub(super) fn prot(&mut self, level: ProtLevel) {
        let reply = match (self.security, level) {
            (Security::Plain, _) => Reply::PROT_WITHOUT_TLS,
            (Security::Tls, _) => Reply::PROT_WITHOUT_PBSZ,
            (_, ProtLevel::Private) => {
                self.security = Security::TlsDataPrivate;
                Reply::PROT_PRIVATE
            }
            (_, ProtLevel::Clear) if self.config.tls == TlsMode::Required => {
                Reply::PROT_CLEAR_REFUSED
            }
            (_, ProtLevel::Clear) => {
                self.security = Security::TlsDataClear;
                Reply::PROT_CLEAR
            }
            (_, ProtLevel::Safe | ProtLevel::Confidential) => Reply::PROT_UNSUPPORTED,
        };
        self.reply(reply);
    }
}
