//! The `berth-bench` binary: parses the command line and runs the chosen command.

use std::io::Write;
use std::process::ExitCode;

use berth_bench::cli::{self, Command};
use berth_bench::report;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match cli::parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("berth-bench: {e}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    match execute(command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn execute(command: Command) -> Result<(), String> {
    match command {
        Command::Help => {
            print!("{}", cli::USAGE);
            Ok(())
        }
        Command::Run(opts) => {
            let mut stdout = std::io::stdout();
            let lines = berth_bench::run(&opts, |line| {
                // A closed stdout must not panic; the run's exit status reports it.
                let _ = writeln!(stdout, "{}", line.to_json());
                let _ = stdout.flush();
            })
            .await?;
            let errors: u64 = lines.iter().map(|l| l.errors).sum();
            if errors > 0 {
                eprintln!("berth-bench: {errors} errors (see first_error in the lines)");
            }
            Ok(())
        }
        Command::Report {
            labels,
            goals,
            files,
        } => {
            let mut lines = Vec::new();
            for file in &files {
                let text =
                    std::fs::read_to_string(file).map_err(|e| format!("reading {file}: {e}"))?;
                let (parsed, warnings) = report::parse(&text);
                for w in warnings {
                    eprintln!("berth-bench: {file}: {w}");
                }
                lines.extend(parsed);
            }
            let rows = report::rows_for_goals(&lines, &labels, goals);
            print!("{}", report::render(&rows, &labels));
            Ok(())
        }
        Command::Token(opts) => {
            println!("{}", berth_bench::token::mint(&opts)?);
            Ok(())
        }
        Command::PopulateS3(opts) => berth_bench::populate_s3::populate(&opts).await.map(|_| ()),
        Command::Receive { port } => berth_bench::receiver::serve(port).await,
        Command::FreePort => {
            let listener = std::net::TcpListener::bind("127.0.0.1:0")
                .map_err(|e| format!("cannot bind a port: {e}"))?;
            let addr = listener.local_addr().map_err(|e| e.to_string())?;
            println!("{}", addr.port());
            Ok(())
        }
        Command::Wait { url, timeout } => berth_bench::wait::until_up(&url, timeout).await,
    }
}
