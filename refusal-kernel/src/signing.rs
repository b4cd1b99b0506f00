//! Message signatures: HMAC over the four JSON frames with the connection key, checked
//! in constant time, with replayed signatures refused.

use super::*;

/// Signs and verifies messages; remembers signatures to refuse replays.
pub(super) struct Signer {
    pub(super) key: Vec<u8>,
    pub(super) scheme: Scheme,
    pub(super) seen: HashSet<Vec<u8>>,
    pub(super) seen_order: VecDeque<Vec<u8>>,
}

impl Signer {
    pub(super) fn new(key: Vec<u8>, scheme: Scheme) -> Signer {
        Signer {
            key,
            scheme,
            seen: HashSet::new(),
            seen_order: VecDeque::new(),
        }
    }

    pub(super) fn enabled(&self) -> bool {
        !self.key.is_empty()
    }

    pub(super) fn sign(&self, parts: [&[u8]; 4]) -> String {
        if !self.enabled() {
            return String::new();
        }
        match self.scheme {
            Scheme::Sha256 => hex::encode(mac::<Hmac<Sha256>>(&self.key, parts)),
            Scheme::Sha512 => hex::encode(mac::<Hmac<Sha512>>(&self.key, parts)),
        }
    }

    /// Checks `signature` (hex) over `parts` in constant time, then against replays.
    pub(super) fn verify(
        &mut self,
        signature: &[u8],
        parts: [&[u8]; 4],
    ) -> Result<(), &'static str> {
        if !self.enabled() {
            return Ok(());
        }
        let Ok(raw) = hex::decode(signature) else {
            return Err("signature is not hex");
        };
        let ok = match self.scheme {
            Scheme::Sha256 => verify_mac::<Hmac<Sha256>>(&self.key, parts, &raw),
            Scheme::Sha512 => verify_mac::<Hmac<Sha512>>(&self.key, parts, &raw),
        };
        if !ok {
            return Err("invalid signature");
        }
        if !self.seen.insert(raw.clone()) {
            return Err("duplicate signature (replayed message)");
        }
        self.seen_order.push_back(raw);
        if self.seen_order.len() > DIGEST_HISTORY
            && let Some(old) = self.seen_order.pop_front()
        {
            self.seen.remove(&old);
        }
        Ok(())
    }
}

pub(super) fn keyed<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: [&[u8]; 4]) -> Option<M> {
    // HMAC accepts keys of any length, so this never fails in practice.
    let mut m = <M as hmac::digest::KeyInit>::new_from_slice(key).ok()?;
    for p in parts {
        m.update(p);
    }
    Some(m)
}

pub(super) fn mac<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: [&[u8]; 4]) -> Vec<u8> {
    keyed::<M>(key, parts)
        .map(|m| m.finalize().into_bytes().to_vec())
        .unwrap_or_default()
}

pub(super) fn verify_mac<M: Mac + hmac::digest::KeyInit>(
    key: &[u8],
    parts: [&[u8]; 4],
    sig: &[u8],
) -> bool {
    keyed::<M>(key, parts).is_some_and(|m| m.verify_slice(sig).is_ok())
}
