//! Process limits a server needs raised at start.
//!
//! Every large blob being served holds its file open (so `sendfile` can read it) next to
//! its socket, so a busy registry needs about two descriptors per download. Login
//! sessions and service managers commonly start processes with a soft limit of 1,024
//! open files and a much higher hard limit; berth raises the soft limit to the hard one,
//! as Go programs (distribution among them) do by default.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Raises the soft limit on open files to the hard limit. Answers the limit before and
/// after (`None` means unlimited), or why it could not be raised.
pub fn raise_open_files() -> Result<(Option<u64>, Option<u64>), String> {
    let limit = getrlimit(Resource::Nofile);
    if limit.current == limit.maximum {
        return Ok((limit.current, limit.current));
    }
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    setrlimit(Resource::Nofile, raised)
        .map_err(|e| format!("cannot raise the open-files limit: {e}"))?;
    Ok((limit.current, limit.maximum))
}
