//! Round trips of the users file: add, verify, change the password, remove (with and without
//! the home folder), reload from disk, notice changes made by another process, and clear
//! errors for files that are missing or malformed.
//!
//! Hashing costs about half a second in a debug build, so each test hashes only a few
//! passwords.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use ferry_backends::accounts::{Accounts, AccountsError, valid_name};

#[test]
fn add_verify_passwd_remove_reload() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = data.join("users.toml");

    let err = Accounts::load(&file, &data).unwrap_err();
    assert!(err.is_missing(), "{err}");
    assert!(err.to_string().contains("users.toml"), "{err}");

    let mut acc = Accounts::load_or_empty(&file, &data).unwrap();
    assert!(acc.is_empty());
    let alice = acc.add("alice", "correct horse", false).unwrap();
    assert_eq!(alice.home, data.join("home/alice"));
    assert!(alice.home.is_dir());
    assert!(alice.home.is_absolute());
    acc.add("bob", "hunter2", true).unwrap();
    assert!(matches!(
        acc.add("alice", "again", false),
        Err(AccountsError::Exists { .. })
    ));

    // The file: mode 0600, no temporaries left, no password in it.
    let meta = fs::metadata(&file).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let text = fs::read_to_string(&file).unwrap();
    assert!(!text.contains("correct horse") && !text.contains("hunter2"));
    assert!(text.contains("$argon2id$v=19$m=19456,t=2,p=1$"), "{text}");
    let leftovers: Vec<_> = fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "users.toml" && n != "home")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Verify: right, wrong, unknown.
    let ok = acc.verify("alice", "correct horse").unwrap();
    assert_eq!((ok.name.as_str(), ok.read_only), ("alice", false));
    assert!(acc.verify("alice", "wrong").is_none());
    assert!(acc.verify("nobody", "correct horse").is_none());

    // Reload from disk in another "process".
    let other = Accounts::load(&file, &data).unwrap();
    let names: Vec<String> = other.list().into_iter().map(|a| a.name).collect();
    assert_eq!(names, ["alice", "bob"]);
    assert!(other.get("bob").unwrap().read_only);
    assert!(other.verify("bob", "hunter2").is_some());

    // Change a password.
    acc.set_password("alice", "new password").unwrap();
    assert!(acc.verify("alice", "correct horse").is_none());
    assert!(matches!(
        acc.set_password("carol", "x"),
        Err(AccountsError::Unknown { .. })
    ));

    // The other copy notices and reloads.
    let mut other = other;
    assert!(other.changed_on_disk());
    assert!(other.reload_if_changed().unwrap());
    assert!(!other.changed_on_disk());
    assert!(!other.reload_if_changed().unwrap());
    assert!(other.verify("alice", "new password").is_some());

    // A change made elsewhere is picked up before a change here (no lost update).
    other.set_read_only("alice", true).unwrap();
    acc.remove("bob", false).unwrap();
    let fresh = Accounts::load(&file, &data).unwrap();
    assert!(fresh.get("alice").unwrap().read_only);
    assert!(fresh.get("bob").is_none());
    // Without deleting the home.
    assert!(data.join("home/bob").is_dir());

    // With it.
    fs::write(data.join("home/alice/file.txt"), b"x").unwrap();
    acc.remove("alice", true).unwrap();
    assert!(!data.join("home/alice").exists());
    assert!(acc.is_empty());
    assert!(matches!(
        acc.remove("alice", false),
        Err(AccountsError::Unknown { .. })
    ));
    assert!(Accounts::load(&file, &data).unwrap().is_empty());
}

#[test]
fn names_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let mut acc = Accounts::empty(dir.path().join("users.toml"), dir.path());
    for bad in ["", ".", "..", "a/b", "../x", "a b", &"x".repeat(33), "ü"] {
        assert!(!valid_name(bad));
        let err = acc.add(bad, "pw", false).unwrap_err();
        assert!(
            matches!(err, AccountsError::BadName { .. }),
            "{bad:?}: {err}"
        );
    }
    assert!(!dir.path().join("users.toml").exists());
    assert!(!dir.path().join("home").exists());
}

fn malformed(text: &str) -> (String, usize, usize) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.toml");
    fs::write(&file, text).unwrap();
    match Accounts::load(&file, dir.path()) {
        Err(e @ AccountsError::Malformed { line, column, .. }) => {
            let shown = e.to_string();
            assert!(shown.contains(&file.display().to_string()), "{shown}");
            assert!(shown.contains(&format!("line {line}")), "{shown}");
            (shown, line, column)
        }
        other => panic!("{text:?} gave {other:?}"),
    }
}

const HASH: &str = concat!(
    "$argon2id$v=19$m=19456,t=2,p=1$lgTssrIZ146v1jEUaJ7W6g$",
    "uGKKhsOSJG8idsigDGdbV5Hj9B/x8TvtAkvvvPB+9ZY",
);

#[test]
fn malformed_files_name_the_file_line_and_problem() {
    // Not TOML.
    let (msg, line, _) = malformed("[[users]]\nname = \"a\"\npassword = \n");
    assert_eq!(line, 3, "{msg}");
    // A typo in a key.
    let (msg, line, _) = malformed(&format!(
        "[[users]]\nname = \"a\"\npassword = \"{HASH}\"\nreadonly = true\n"
    ));
    assert_eq!(line, 4, "{msg}");
    assert!(msg.contains("readonly"), "{msg}");
    // A missing field.
    let (msg, _, _) = malformed("[[users]]\nname = \"a\"\n");
    assert!(msg.contains("password"), "{msg}");
    // A bad name.
    let (msg, line, col) = malformed(&format!(
        "[[users]]\nname = \"a\"\npassword = \"{HASH}\"\n\n\
         [[users]]\nname = \"../etc\"\npassword = \"{HASH}\"\n"
    ));
    assert_eq!((line, col), (6, 8), "{msg}");
    assert!(msg.contains("not allowed"), "{msg}");
    // Twice the same name.
    let (msg, line, _) = malformed(&format!(
        "[[users]]\nname = \"a\"\npassword = \"{HASH}\"\n\
         [[users]]\nname = \"a\"\npassword = \"{HASH}\"\n"
    ));
    assert_eq!(line, 5, "{msg}");
    assert!(msg.contains("twice"), "{msg}");
    // A password in clear text: refused, and not repeated in the message.
    let (msg, line, _) = malformed("[[users]]\nname = \"a\"\npassword = \"plain secret\"\n");
    assert_eq!(line, 3, "{msg}");
    assert!(!msg.contains("plain secret"), "{msg}");
    assert!(msg.contains("PHC"), "{msg}");
    // An empty home.
    let (msg, line, _) = malformed(&format!(
        "[[users]]\nname = \"a\"\npassword = \"{HASH}\"\nhome = \"\"\n"
    ));
    assert_eq!(line, 4, "{msg}");
}

#[test]
fn hand_written_files_and_unreadable_ones() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.toml");
    fs::write(
        &file,
        format!(
            "# comment\n[[users]]\nname = \"a\"\npassword = \"{HASH}\"\n\n\
             [[users]]\nname = \"b\"\npassword = \"{HASH}\"\nhome = \"/srv/b\"\nread_only = true\n"
        ),
    )
    .unwrap();
    let acc = Accounts::load(&file, dir.path()).unwrap();
    assert_eq!(acc.get("a").unwrap().home, dir.path().join("home/a"));
    let b = acc.get("b").unwrap();
    assert_eq!(b.home, std::path::Path::new("/srv/b"));
    assert!(b.read_only);
    // Debug output shows no hash.
    let debug = format!("{acc:?}");
    assert!(!debug.contains("argon2"), "{debug}");

    // An empty file has no users.
    fs::write(&file, "").unwrap();
    assert!(Accounts::load(&file, dir.path()).unwrap().is_empty());

    // A folder where the file should be.
    let folder = dir.path().join("folder.toml");
    fs::create_dir(&folder).unwrap();
    let err = Accounts::load(&folder, dir.path()).unwrap_err();
    assert!(matches!(err, AccountsError::Unreadable { .. }), "{err}");
    assert!(err.to_string().contains("folder.toml"), "{err}");
}

#[test]
fn removing_never_deletes_the_data_folder() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.toml");
    fs::create_dir(dir.path().join("x")).unwrap();
    // Homes that are the data folder itself.
    for (name, home) in [("a", "."), ("b", "x/..")] {
        fs::write(
            &file,
            format!("[[users]]\nname = \"{name}\"\npassword = \"{HASH}\"\nhome = \"{home}\"\n"),
        )
        .unwrap();
        let mut acc = Accounts::load(&file, dir.path()).unwrap();
        let err = acc.remove(name, true).unwrap_err();
        assert!(matches!(err, AccountsError::Home { .. }), "{name}: {err}");
        assert!(file.exists() && dir.path().join("x").is_dir(), "{name}");
    }
}
