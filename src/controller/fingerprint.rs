//! Fingerprints: how the operator recognises the tokens it made, for which resource, and in
//! which installation — and the proof, checked against the live GHES object, that the only
//! revoke of an Authorization's token requires.
//!
//! A fingerprint is `k8s-<uid>.<installation>`: the uid of the Authorization it was made for,
//! and the id of the operator installation that made it (by default the uid of the cluster's
//! `kube-system` namespace). A rotated token adds its rotation counter: `k8s-<uid>.<inst>.<n>`
//! for the n-th rotation (GHES's get-or-create needs a new fingerprint for a new token).
//! Tokens made before installation ids existed carry `k8s-<uid>`; they still belong to the
//! resource with that uid (uids are unique across clusters), but to no installation that can
//! be named.

use std::fmt;

use crate::ghes::Authorization as GhesAuthorization;

/// Prefix of every fingerprint the operator gives its tokens.
pub const PREFIX: &str = "k8s-";

/// The id of one operator installation: a DNS label (lowercase letters, digits and `-`, at
/// most 63 characters), stable for the life of the installation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct InstallationId(String);

impl InstallationId {
    /// Checks `text` and takes it as an installation id.
    pub fn parse(text: &str) -> Result<Self, String> {
        let valid = !text.is_empty()
            && text.len() <= 63
            && text
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !text.starts_with('-')
            && !text.ends_with('-');
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            Err(format!(
                "installation id {text:?} is not a DNS label (lowercase letters, digits and '-', \
                 1 to 63 characters, starting and ending with a letter or digit)"
            ))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for InstallationId {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Self::parse(text)
    }
}

impl fmt::Display for InstallationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An operator fingerprint: the resource a token was made for, the installation that made it
/// (`None` for the older form without one) and how many rotations came before it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    uid: String,
    installation: Option<InstallationId>,
    rotation: u32,
}

impl Fingerprint {
    /// The fingerprint this installation gives the first token of the resource with `uid`.
    pub fn new(uid: &str, installation: &InstallationId) -> Self {
        Self {
            uid: uid.to_owned(),
            installation: Some(installation.clone()),
            rotation: 0,
        }
    }

    /// The fingerprint of the token that replaces this one in a rotation, made by
    /// `installation`.
    pub fn rotated(&self, installation: &InstallationId) -> Self {
        Self {
            uid: self.uid.clone(),
            installation: Some(installation.clone()),
            rotation: self.rotation.saturating_add(1),
        }
    }

    /// Reads a fingerprint; `None` when it is not one the operator makes (a human's token, or
    /// another tool's). Each fingerprint has one text form: a rotation counter is written
    /// without leading zeros and never as `0`.
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.strip_prefix(PREFIX)?;
        let (uid, installation, rotation) = match rest.split_once('.') {
            None => (rest, None, 0),
            Some((uid, tail)) => {
                let (installation, rotation) = match tail.split_once('.') {
                    None => (tail, 0),
                    Some((installation, counter)) => {
                        let canonical = !counter.is_empty()
                            && !counter.starts_with('0')
                            && counter.chars().all(|c| c.is_ascii_digit());
                        if !canonical {
                            return None;
                        }
                        (installation, counter.parse().ok()?)
                    }
                };
                (
                    uid,
                    Some(InstallationId::parse(installation).ok()?),
                    rotation,
                )
            }
        };
        let uid_ok = !uid.is_empty()
            && uid
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        uid_ok.then(|| Self {
            uid: uid.to_owned(),
            installation,
            rotation,
        })
    }

    /// How many rotations came before this token (0 for the first).
    pub fn rotation(&self) -> u32 {
        self.rotation
    }

    /// The uid of the Authorization the token was made for.
    pub fn uid(&self) -> &str {
        &self.uid
    }

    /// The installation that made the token; `None` for the older form.
    pub fn installation(&self) -> Option<&InstallationId> {
        self.installation.as_ref()
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.installation, self.rotation) {
            (Some(installation), 0) => write!(f, "{PREFIX}{}.{installation}", self.uid),
            (Some(installation), n) => write!(f, "{PREFIX}{}.{installation}.{n}", self.uid),
            (None, _) => write!(f, "{PREFIX}{}", self.uid),
        }
    }
}

/// Who made a GHES authorization, as far as this installation can tell from its fingerprint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Provenance {
    /// No operator fingerprint: made by a person or another tool.
    Unknown,
    /// Made by this installation for the resource with this uid.
    Ours(String),
    /// Made by an operator for the resource with this uid, before installation ids existed.
    Legacy(String),
    /// Made by another installation of the operator: never this one's to delete.
    Foreign,
}

impl Provenance {
    /// The provenance of an authorization with `fingerprint`, seen from `installation`.
    pub fn of(fingerprint: Option<&str>, installation: &InstallationId) -> Self {
        match fingerprint.and_then(Fingerprint::parse) {
            None => Self::Unknown,
            Some(parsed) => match parsed.installation {
                None => Self::Legacy(parsed.uid),
                Some(made_by) if &made_by == installation => Self::Ours(parsed.uid),
                Some(_) => Self::Foreign,
            },
        }
    }
}

/// Proof that a live GHES authorization carries a fingerprint of one resource, made by this
/// installation (or by an operator before installation ids existed). Only
/// [`Owned::verify`] makes one, and revoking an Authorization's token takes one: a DELETE can
/// never be sent for an id read from status alone.
#[derive(Debug)]
pub struct Owned {
    id: u64,
    fingerprint: String,
}

impl Owned {
    /// Checks `live` (an authorization as GHES answered it just now, or in the current
    /// listing) against the resource's `uid`. The error says why it is not the resource's.
    pub fn verify(
        live: &GhesAuthorization,
        uid: &str,
        installation: &InstallationId,
    ) -> Result<Self, String> {
        let fingerprint = live.fingerprint.as_deref().unwrap_or_default();
        match Provenance::of(Some(fingerprint), installation) {
            Provenance::Ours(made_for) | Provenance::Legacy(made_for) if made_for == uid => {
                Ok(Self {
                    id: live.id,
                    fingerprint: fingerprint.to_owned(),
                })
            }
            Provenance::Ours(_) | Provenance::Legacy(_) => Err(format!(
                "GHES authorization {} carries fingerprint {fingerprint:?}, made for another \
                 resource",
                live.id
            )),
            Provenance::Foreign => Err(format!(
                "GHES authorization {} carries fingerprint {fingerprint:?}, made by another \
                 installation of the operator",
                live.id
            )),
            Provenance::Unknown if fingerprint.is_empty() => Err(format!(
                "GHES authorization {} has no fingerprint: the operator did not make it",
                live.id
            )),
            Provenance::Unknown => Err(format!(
                "GHES authorization {} carries fingerprint {fingerprint:?}, which the operator \
                 did not make",
                live.id
            )),
        }
    }

    /// The authorization's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The fingerprint it carries.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "0b9c5f1e-1111-2222-3333-444455556666";

    fn here() -> InstallationId {
        InstallationId::parse("5f0c1d2e-aaaa-bbbb-cccc-000011112222").expect("id")
    }

    fn live(id: u64, fingerprint: Option<&str>) -> GhesAuthorization {
        GhesAuthorization::listed(id, "00000000000000000000", fingerprint)
    }

    #[test]
    fn a_fingerprint_names_the_resource_and_the_installation() {
        let fingerprint = Fingerprint::new(UID, &here());
        let text = fingerprint.to_string();
        assert_eq!(
            text,
            "k8s-0b9c5f1e-1111-2222-3333-444455556666.5f0c1d2e-aaaa-bbbb-cccc-000011112222"
        );
        assert_eq!(Fingerprint::parse(&text), Some(fingerprint.clone()));
        let legacy = Fingerprint::parse(&format!("k8s-{UID}")).expect("legacy");
        assert_eq!((legacy.uid(), legacy.installation()), (UID, None));
        let rotated = fingerprint.rotated(&here()).rotated(&here());
        assert_eq!(rotated.rotation(), 2);
        assert_eq!(rotated.to_string(), format!("{text}.2"));
        assert_eq!(Fingerprint::parse(&rotated.to_string()), Some(rotated));
        let from_legacy = legacy.rotated(&here());
        assert_eq!(from_legacy.to_string(), format!("{text}.1"));
        for not_ours in [
            "",
            "laptop",
            "k8s-",
            "k8s-a.B",
            "k8s-a/b",
            "k8s-a.b.c",
            "k8s-a.b.0",
            "k8s-a.b.01",
            "k8s-a.b.",
            "k8s-a.b.1.2",
            "k8s-a.b.99999999999",
        ] {
            assert_eq!(Fingerprint::parse(not_ours), None, "{not_ours}");
        }
    }

    #[test]
    fn installation_ids_are_dns_labels() {
        assert!(InstallationId::parse("prod-eu-1").is_ok());
        for bad in ["", "Prod", "-a", "a-", "a.b", &"a".repeat(64)] {
            assert!(InstallationId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn provenance_tells_ours_legacy_foreign_and_unknown_apart() {
        let other = InstallationId::parse("other").expect("id");
        let ours = Fingerprint::new(UID, &here()).to_string();
        let theirs = Fingerprint::new(UID, &other).to_string();
        assert_eq!(
            Provenance::of(Some(&ours), &here()),
            Provenance::Ours(UID.into())
        );
        assert_eq!(Provenance::of(Some(&theirs), &here()), Provenance::Foreign);
        assert_eq!(
            Provenance::of(Some(&format!("k8s-{UID}")), &here()),
            Provenance::Legacy(UID.into())
        );
        assert_eq!(Provenance::of(Some("ci"), &here()), Provenance::Unknown);
        assert_eq!(Provenance::of(None, &here()), Provenance::Unknown);
    }

    #[test]
    fn only_a_token_made_for_the_resource_can_be_revoked() {
        let ours = Fingerprint::new(UID, &here()).to_string();
        let owned = Owned::verify(&live(7, Some(&ours)), UID, &here()).expect("ours");
        assert_eq!((owned.id(), owned.fingerprint()), (7, ours.as_str()));
        assert!(Owned::verify(&live(7, Some(&format!("k8s-{UID}"))), UID, &here()).is_ok());
        let another = Fingerprint::new("another-uid", &here()).to_string();
        let error = Owned::verify(&live(8, Some(&another)), UID, &here()).expect_err("not ours");
        assert!(error.contains("made for another resource"), "{error}");
        let foreign = Fingerprint::new(UID, &InstallationId::parse("x").expect("id")).to_string();
        let error = Owned::verify(&live(9, Some(&foreign)), UID, &here()).expect_err("foreign");
        assert!(error.contains("another installation"), "{error}");
        assert!(Owned::verify(&live(10, None), UID, &here()).is_err());
    }
}
