//! `Users::check_quick`: a login verified a moment ago is answered from memory, anything else
//! (a first login, a wrong password, a changed users file) is left to the blocking check.

use ferry_backends::Accounts;
use ferry_smol::users::{DiskUsers, Users};

#[test]
fn only_a_remembered_login_from_an_unchanged_file_is_quick() {
    let dir = std::env::temp_dir().join(format!("ferry-quick-logins-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("users.toml");
    let mut a = Accounts::load_or_empty(&file, &dir).unwrap();
    a.add("alice", "pw", false).unwrap();
    drop(a);
    let users = DiskUsers::new(Accounts::load(&file, &dir).unwrap());
    // Never verified: no answer from memory, for the right password or a wrong one.
    assert!(users.check_quick("alice", "pw").is_none());
    assert!(users.check("alice", "pw").unwrap().is_some());
    // Verified once: the right password is answered at once, with the home.
    let login = users.check_quick("alice", "pw").unwrap().unwrap().unwrap();
    assert!(login.storage.is_rooted_at(dir.join("home/alice")));
    assert!(!login.read_only);
    // A wrong password or an unknown name never is.
    assert!(users.check_quick("alice", "px").is_none());
    assert!(users.check_quick("bob", "pw").is_none());
    // A changed password: the file changed, so the blocking check decides (and refuses).
    let mut other = Accounts::load(&file, &dir).unwrap();
    other.set_password("alice", "new").unwrap();
    drop(other);
    assert!(users.check_quick("alice", "pw").is_none());
    assert!(users.check("alice", "pw").unwrap().is_none());
    assert!(users.check_quick("alice", "pw").is_none());
    assert!(users.check("alice", "new").unwrap().is_some());
    assert!(users.check_quick("alice", "new").is_some());
    let _ = std::fs::remove_dir_all(&dir);
}
