//! A load balancer in front of a fleet: Debian's nginx, sending each request to the next
//! node in turn (round robin per request, not per connection: a client's keep-alive
//! connection reaches every node), request bodies streamed through unbuffered, no retry
//! on another node. It logs which node answered each request. One process (no master),
//! so killing it at the end of a test leaves no worker behind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{self, Process};

/// A running nginx balancing over some nodes; stopped when dropped.
pub struct Balancer {
    pub process: Process,
    log: PathBuf,
}

impl Balancer {
    /// Starts nginx on a free loopback port in front of `nodes` (`host:port` each), its
    /// files under `work`; `None` (the test skips) when nginx is not installed.
    pub fn start(nodes: &[String], work: &Path) -> Option<Balancer> {
        if !common::have_tool("nginx") {
            return None;
        }
        let dir = work.join("balancer");
        std::fs::create_dir_all(&dir).expect("balancer dir");
        let addr = format!("127.0.0.1:{}", common::free_port());
        let log = dir.join("access.log");
        let servers: String = nodes.iter().map(|n| format!("    server {n};\n")).collect();
        let conf = dir.join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "master_process off;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log;\n\
                 events {{ worker_connections 256; }}\n\
                 http {{\n  log_format node '$request_method $status $upstream_addr';\n  \
                 access_log {log} node;\n  client_body_temp_path {dir}/body;\n  \
                 proxy_temp_path {dir}/proxy;\n  upstream fleet {{\n{servers}    keepalive 16;\n  }}\n  \
                 server {{\n    listen {addr};\n    client_max_body_size 0;\n    \
                 proxy_request_buffering off;\n    proxy_buffering off;\n    \
                 proxy_http_version 1.1;\n    location / {{\n      proxy_pass http://fleet;\n      \
                 proxy_set_header Connection \"\";\n      proxy_set_header Host $http_host;\n      \
                 proxy_next_upstream off;\n    }}\n  }}\n}}\n",
                dir = dir.display(),
                log = log.display(),
            ),
        )
        .expect("write nginx.conf");
        let mut cmd = Command::new("nginx");
        cmd.arg("-c").arg(&conf).args(["-g", "daemon off;"]);
        let process = common::spawn(cmd, addr, &dir, "nginx");
        Some(Balancer { process, log })
    }

    /// How many requests each node answered (by its address), from the access log.
    pub fn answered_by(&self) -> BTreeMap<String, usize> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut counts = BTreeMap::new();
        for node in text.lines().filter_map(|l| l.split(' ').nth(2)) {
            *counts.entry(node.to_owned()).or_default() += 1;
        }
        counts
    }
}
