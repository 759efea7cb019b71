//! Authentication: Argon2id password hashes, opaque bearer tokens, and the login throttle.

pub mod password;
pub mod throttle;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use base64::Engine;
use sha2::{Digest, Sha256};

/// Argon2id takes ~19 MiB and tens of milliseconds per hash, so it runs on its own threads, one
/// per core, fed by a queue. Left to the blocking pool (up to 512 threads), a burst of logins ran
/// hundreds at once and the memory reached gigabytes; bounded to one per core but still on
/// whichever pool thread was free, each of those threads' malloc arenas kept its own 19 MiB block
/// after the hash (about 430 MB retained after 25 technicians logged in, seen in the load test).
/// A fixed set of threads keeps that to one block per core. They run at a lower priority than the
/// rest of the server (`HASHING_NICE_STEPS`): see `lower_own_priority`.
static HASHERS: std::sync::LazyLock<std::sync::mpsc::Sender<HashJob>> =
    std::sync::LazyLock::new(|| {
        let (tx, rx) = std::sync::mpsc::channel::<HashJob>();
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        for i in 0..cores {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    lower_own_priority();
                    loop {
                        // The lock is held only to take the next job, not while hashing.
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(poisoned) => poisoned.into_inner().recv(),
                        };
                        match job {
                            Ok(job) => {
                                job();
                                release_freed_memory();
                            }
                            Err(_) => break,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a password hashing thread");
            }
        }
        tx
    });

type HashJob = Box<dyn FnOnce() + Send>;

/// How many nice steps the hashing threads run below the server's other threads.
const HASHING_NICE_STEPS: libc::c_int = 10;

/// A burst of logins (tens of milliseconds of CPU per hash, one thread per core) competed level
/// with the media engine's shards: during the load test's ramp a shard waited for a CPU ~45 % of
/// the time against ~19 % once the logins were done, so media was delayed by logins and rooms
/// were spread over more shards than the forwarding needed (placement counts a shard's wait).
/// Ten nice steps give a hash about a tenth of a core's time against a busy shard: a login slows
/// down under media load, media does not slow down under a login burst, and a hash is never
/// starved. The steps are relative to the server's own nice value, so a server started with
/// `nice` keeps the same order; a failure (e.g. a seccomp policy) leaves the thread as it was.
#[cfg(target_os = "linux")]
fn lower_own_priority() {
    // SAFETY: gettid/getpriority/setpriority take no pointers. On Linux a nice value belongs to
    // a thread, and PRIO_PROCESS with a thread id changes only that thread.
    unsafe {
        let tid = libc::gettid() as libc::id_t;
        // getpriority can legitimately return -1, so errno tells a failure apart.
        *libc::__errno_location() = 0;
        let current = libc::getpriority(libc::PRIO_PROCESS, tid);
        if current == -1 && *libc::__errno_location() != 0 {
            return;
        }
        let lowered = (current + HASHING_NICE_STEPS).min(19);
        if libc::setpriority(libc::PRIO_PROCESS, tid, lowered) != 0 {
            tracing::warn!(
                error = %std::io::Error::last_os_error(),
                "could not lower the password hashing threads' priority"
            );
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_own_priority() {}

/// glibc keeps a freed Argon2 block resident (its mmap threshold rises to the block's size after
/// the first one, so later blocks come from the heap and are not trimmed): without this, 11
/// logins left 244 MB resident. Trimming after a hash costs far less than the hash. (Also used
/// between the chunks of a report file.)
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) fn release_freed_memory() {
    // SAFETY: malloc_trim only returns free memory to the kernel; it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn release_freed_memory() {}

/// Runs `work` on the hashing threads; `None` if they are gone.
async fn on_hashing_thread<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: HashJob = Box::new(move || {
        let _ = tx.send(work());
    });
    HASHERS.send(job).ok()?;
    rx.await.ok()
}

pub async fn hash_password(password: String) -> anyhow::Result<String> {
    on_hashing_thread(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))
    })
    .await
    .unwrap_or_else(|| Err(anyhow::anyhow!("no password hashing thread is running")))
}

pub async fn verify_password(password: String, hash: String) -> bool {
    on_hashing_thread(move || match PasswordHash::new(&hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    })
    .await
    .unwrap_or(false)
}

/// A random bearer token (256 bits, URL-safe) and the hash the store keeps.
pub fn new_token() -> (String, String) {
    let bytes: [u8; 32] = rand::random();
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = token_hash(&token);
    (token, hash)
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A readable random password for bootstrap: 4 character types, no repeated characters, so it meets
/// any minimum strength.
pub fn generate_password() -> String {
    const LOWER: &[u8] = b"abcdefghijkmnpqrstuvwxyz";
    const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    const DIGITS: &[u8] = b"23456789";
    const SPECIAL: &[u8] = b"%#&!+=-";
    let mut out: Vec<u8> = Vec::new();
    let pick = |set: &[u8], n: usize, out: &mut Vec<u8>| {
        while out.iter().filter(|c| set.contains(c)).count() < n {
            let c = set[rand::random_range(0..set.len())];
            if !out.contains(&c) {
                out.push(c);
            }
        }
    };
    pick(LOWER, 6, &mut out);
    pick(UPPER, 4, &mut out);
    pick(DIGITS, 3, &mut out);
    pick(SPECIAL, 2, &mut out);
    // Shuffle so the types are not in a fixed order.
    for i in (1..out.len()).rev() {
        out.swap(i, rand::random_range(0..=i));
    }
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_are_argon2id() {
        let h = hash_password("Sample1%".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("Sample1%".into(), h.clone()).await);
        assert!(!verify_password("Sample1&".into(), h.clone()).await);
        assert!(!verify_password("x".into(), "not a hash".into()).await);
    }

    /// The nice value of the calling thread, from the kernel's own account of it.
    #[cfg(target_os = "linux")]
    fn own_nice() -> i32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // Field 19 of the line; the command name before it is in parentheses and may hold spaces.
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        after_name.split(' ').nth(16).unwrap().parse().unwrap()
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashes_run_below_the_servers_priority() {
        let server = own_nice();
        let hashing = on_hashing_thread(own_nice).await.unwrap();
        assert_eq!(hashing, (server + HASHING_NICE_STEPS).min(19));
        assert!(hashing > server || server == 19, "{hashing} vs {server}");
    }

    #[test]
    fn generated_passwords_are_excellent() {
        for _ in 0..50 {
            let p = generate_password();
            assert_eq!(
                password::PasswordStrength::of(&p),
                Some(password::PasswordStrength::Excellent),
                "{p}"
            );
        }
    }

    #[test]
    fn tokens_are_unique_and_only_their_hash_is_kept() {
        let (a, ha) = new_token();
        let (b, _) = new_token();
        assert_ne!(a, b);
        assert_eq!(token_hash(&a), ha);
        assert!(a.len() >= 43);
    }
}
