//! Sections of the project's documents that tests write: the text between
//! `<!-- NAME:begin -->` and `<!-- NAME:end -->` must be what the test produced, so the docs show
//! what was verified, not what someone typed. With `UPDATE_README=1` the test writes it instead.

/// Checks (or with `UPDATE_README=1` writes) section `name` of `file` (relative to the
/// repository root); `command` is what regenerates it.
pub fn check_section(file: &str, name: &str, command: &str, body: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
    let (begin, end) = (
        format!("<!-- {name}:begin -->\n"),
        format!("<!-- {name}:end -->"),
    );
    let start = text
        .find(&begin)
        .unwrap_or_else(|| panic!("{file} has no {begin:?}"))
        + begin.len();
    let stop = text[start..]
        .find(&end)
        .unwrap_or_else(|| panic!("{file} has no {end:?}"))
        + start;
    if text[start..stop] == *body {
        return;
    }
    if std::env::var_os("UPDATE_README").is_some() {
        let updated = format!("{}{body}{}", &text[..start], &text[stop..]);
        std::fs::write(&path, updated).unwrap_or_else(|e| panic!("write {file}: {e}"));
        return;
    }
    panic!(
        "{file}'s {name} section is not what the tests produce; run `UPDATE_README=1 {command}` \
         and commit:\n{body}"
    );
}
