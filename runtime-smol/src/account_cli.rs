//! `ferry user set` and `ferry user show`: an account's policy (quotas, rates, sessions,
//! addresses, hidden names, permissions per folder) changed from the command line, and shown
//! with the home's usage.

use clap::Args;
use ferry_backends::Storage;
use ferry_backends::accounts::Account;
use ferry_backends::disk::DiskStorage;
use ferry_backends::net::Cidr;
use ferry_backends::object::{ObjectStorage, SmolHttp};
use ferry_backends::policy::{
    FolderRule, NamePattern, PathPattern, Perms, Policy, Rate, Size, scan_usage,
};
use ferry_smol::config::Settings;
use ferry_smol::users::object_home;

/// What `ferry user set` changes; each option left out keeps what the account has. `none`
/// removes a limit; an empty list (`--allow-from ''`) clears it.
#[derive(Debug, Args)]
pub(crate) struct SetOptions {
    /// Most bytes in the home, e.g. 10GiB (or none).
    #[arg(long, value_name = "SIZE")]
    quota_size: Option<String>,
    /// Most files in the home (or none).
    #[arg(long, value_name = "N")]
    quota_files: Option<String>,
    /// Upload rate of all the account's sessions together, e.g. 10MiB/s (or none).
    #[arg(long, value_name = "RATE")]
    rate_up: Option<String>,
    /// Download rate, e.g. 10MiB/s (or none).
    #[arg(long, value_name = "RATE")]
    rate_down: Option<String>,
    /// Most logged-in sessions at once (or none).
    #[arg(long, value_name = "N")]
    max_sessions: Option<String>,
    /// Logins only from these networks, comma-separated ('' for anywhere).
    #[arg(long, value_name = "CIDR,...")]
    allow_from: Option<String>,
    /// Never logins from these networks, comma-separated ('' for none).
    #[arg(long, value_name = "CIDR,...")]
    deny_from: Option<String>,
    /// Names never listed, opened or made, comma-separated patterns, e.g. '*.part,.ftpquota'.
    #[arg(long, value_name = "PATTERN,...")]
    hidden: Option<String>,
    /// What the account may do in its home: all, or some of list, download, upload,
    /// overwrite, append, delete, rename, mkdir, rmdir, copy, chmod, mtime.
    #[arg(long, value_name = "PERM,...")]
    permissions: Option<String>,
    /// Permissions below a folder, replacing any rule of the same path, e.g.
    /// --folder /incoming=upload (a drop box). Repeat for several; the first match wins.
    #[arg(long = "folder", value_name = "PATH=PERM,...")]
    folders: Vec<String>,
    /// Removes the rule of a folder path.
    #[arg(long = "remove-folder", value_name = "PATH")]
    remove_folders: Vec<String>,
    /// The account may only read (true or false).
    #[arg(long, value_name = "BOOL")]
    pub(crate) read_only: Option<bool>,
}

/// `none` (or empty) as `None`, anything else parsed.
fn limit<T>(
    text: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, String> {
    match text.trim() {
        "" | "none" => Ok(None),
        t => parse(t).map(Some),
    }
}

fn list<T>(text: &str, parse: impl Fn(&str) -> Result<T, String>) -> Result<Vec<T>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(parse)
        .collect()
}

fn number<T: std::str::FromStr>(t: &str) -> Result<T, String> {
    t.parse().map_err(|_| format!("{t:?} is not a number"))
}

fn perms(t: &str) -> Result<Perms, String> {
    if t.trim() == "none" {
        return Ok(Perms::NONE);
    }
    Perms::parse(t.split(',').map(str::trim).filter(|s| !s.is_empty()))
}

impl SetOptions {
    /// `policy` with these changes.
    ///
    /// # Errors
    /// A value that does not parse, or a policy that is not valid.
    pub(crate) fn apply(&self, mut policy: Policy) -> Result<Policy, String> {
        if let Some(t) = &self.quota_size {
            policy.quota_size = limit(t, str::parse::<Size>)?;
        }
        if let Some(t) = &self.quota_files {
            policy.quota_files = limit(t, number)?;
        }
        if let Some(t) = &self.rate_up {
            policy.rate_up = limit(t, str::parse::<Rate>)?;
        }
        if let Some(t) = &self.rate_down {
            policy.rate_down = limit(t, str::parse::<Rate>)?;
        }
        if let Some(t) = &self.max_sessions {
            policy.max_sessions = limit(t, number)?;
        }
        let cidr = |t: &str| t.parse::<Cidr>().map_err(|e| format!("{t:?}: {e}"));
        if let Some(t) = &self.allow_from {
            policy.allow_from = list(t, cidr)?;
        }
        if let Some(t) = &self.deny_from {
            policy.deny_from = list(t, cidr)?;
        }
        if let Some(t) = &self.hidden {
            policy.hidden = list(t, NamePattern::new)?;
        }
        if let Some(t) = &self.permissions {
            policy.permissions = perms(t)?;
        }
        for path in &self.remove_folders {
            let pattern = PathPattern::new(path)?;
            policy.folders.retain(|r| r.path != pattern);
        }
        for rule in &self.folders {
            let (path, p) = rule.split_once('=').ok_or_else(|| {
                format!("--folder {rule:?}: write PATH=PERM,... e.g. /incoming=upload")
            })?;
            let rule = FolderRule {
                path: PathPattern::new(path.trim())?,
                permissions: perms(p)?,
            };
            match policy.folders.iter_mut().find(|r| r.path == rule.path) {
                Some(r) => *r = rule,
                None => policy.folders.push(rule),
            }
        }
        policy.validate()?;
        Ok(policy)
    }
}

/// The bytes and files in `account`'s home, where the settings say homes are.
fn usage(settings: &Settings, account: &Account) -> Result<(u64, u64), String> {
    match settings.s3().map_err(|e| e.to_string())? {
        Some(bucket) => {
            let tree = ObjectStorage::s3(
                &bucket.beneath(&object_home(&account.name)),
                &SmolHttp::new(),
            )
            .map_err(|e| e.to_string())?;
            smol::block_on(scan(&tree))
        }
        None => {
            let tree = DiskStorage::new(&account.home)
                .map_err(|e| format!("{}: {e}", account.home.display()))?;
            smol::block_on(scan(&tree))
        }
    }
}

async fn scan<S: Storage>(tree: &S) -> Result<(u64, u64), String> {
    scan_usage(tree).await.map_err(|e| e.to_string())
}

fn or<T: ToString>(v: Option<T>, none: &str) -> String {
    v.map_or_else(|| none.to_owned(), |v| v.to_string())
}

fn joined<T: ToString>(v: &[T], none: &str) -> String {
    if v.is_empty() {
        return none.to_owned();
    }
    v.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// What `ferry user show` prints.
pub(crate) fn show(settings: &Settings, account: &Account) -> String {
    let p = &account.policy;
    let home = match settings.storage.as_ref() {
        Some(url) => format!(
            "{}/home/{}/",
            url.to_string().trim_end_matches('/'),
            account.name
        ),
        None => account.home.display().to_string(),
    };
    let used = match usage(settings, account) {
        Ok((bytes, 1)) => format!("{} in 1 file", Size(bytes)),
        Ok((bytes, files)) => format!("{} in {files} files", Size(bytes)),
        Err(e) => format!("unknown ({e})"),
    };
    let mut out = vec![
        format!("name:          {}", account.name),
        format!("home:          {home}"),
        format!(
            "read-only:     {}",
            if account.read_only { "yes" } else { "no" }
        ),
        format!("used:          {used}"),
        format!(
            "quota:         {} / {} files",
            or(p.quota_size, "no size limit"),
            or(p.quota_files, "no file limit")
        ),
        format!("rate up:       {}", or(p.rate_up, "unlimited")),
        format!("rate down:     {}", or(p.rate_down, "unlimited")),
        format!("max sessions:  {}", or(p.max_sessions, "unlimited")),
        format!("allow from:    {}", joined(&p.allow_from, "anywhere")),
        format!("deny from:     {}", joined(&p.deny_from, "nowhere")),
        format!("hidden:        {}", joined(&p.hidden, "nothing")),
        format!("permissions:   {}", p.permissions),
    ];
    for r in &p.folders {
        out.push(format!(
            "folder:        {} = {}",
            r.path.shown(),
            r.permissions
        ));
    }
    out.join("\n")
}
