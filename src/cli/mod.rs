//! Command implementations behind the thin `main.rs`: each subcommand parses its own
//! arguments, calls the library API ([`crate::api`]), prints tables and picks output
//! folders. It must hold no orchestration or simulation logic.
//!
//! Errors carry the exit code contract: 2 for bad input (the message names file, line,
//! field), 1 for internal errors; [`crate::api::Error::is_bad_input`] decides.

/// `print!` to stdout that ends the process quietly (exit 0) when the reader has gone away
/// (`clustersim run … | head -1`): `print!` would panic on the broken pipe instead.
macro_rules! out {
    ($($arg:tt)*) => { $crate::cli::write_stdout(format_args!($($arg)*)) };
}

/// `println!` with the broken-pipe behaviour of [`out!`].
macro_rules! outln {
    () => { $crate::cli::write_stdout(format_args!("\n")) };
    ($($arg:tt)*) => {{
        $crate::cli::write_stdout(format_args!($($arg)*));
        $crate::cli::write_stdout(format_args!("\n"));
    }};
}

pub mod checkpoint;
pub mod collective;
pub mod compare;
pub mod merge;
pub mod plan;
pub mod run;
pub mod validate;

use std::fmt;
use std::io::Write;

/// Clap value parser of a whole-number flag (`--seed`, `--replicas`, `--top`, `--gpus`):
/// clap's own message says only "invalid digit found in string"; this one says what is
/// allowed. Negative values reach it too (the flags set `allow_negative_numbers`).
pub fn whole_number<T>(text: &str) -> Result<T, String>
where
    T: std::str::FromStr + num_max::Max,
{
    text.parse().map_err(|_| {
        format!(
            "`{}` is not a whole number; allowed: 0 to {}",
            crate::units::shorten(text),
            T::max_text()
        )
    })
}

/// Clap value parser of a decimal flag (`--max-timeline-gb`): says what is allowed where
/// clap's own message says only "invalid float literal".
pub fn decimal_number(text: &str) -> Result<f64, String> {
    text.parse().map_err(|_| {
        format!(
            "`{}` is not a number; allowed: a decimal such as 4 or 0.5",
            crate::units::shorten(text)
        )
    })
}

/// The largest value of each integer type a flag takes, as [`whole_number`] says it.
pub mod num_max {
    pub trait Max {
        fn max_text() -> String;
    }
    macro_rules! max {
        ($($t:ty),*) => {$(
            impl Max for $t {
                fn max_text() -> String {
                    <$t>::MAX.to_string()
                }
            }
        )*};
    }
    max!(u64, u32, usize);
}

/// Writes to stdout; a closed pipe ends the process with exit 0, as `head` users expect,
/// and any other write error with exit 1 (nothing useful can be printed about it).
pub fn write_stdout(args: fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args) {
        let code = if e.kind() == std::io::ErrorKind::BrokenPipe {
            0
        } else {
            1
        };
        std::process::exit(code);
    }
}

/// An error a command reports to the user.
#[derive(Debug)]
pub enum CliError {
    /// The user's input is wrong: exit code 2.
    BadInput(String),
    /// Something failed that the user could not have prevented: exit code 1.
    Internal(String),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::BadInput(_) => 2,
            CliError::Internal(_) => 1,
        }
    }

    pub fn bad(msg: impl Into<String>) -> Self {
        CliError::BadInput(msg.into())
    }

    pub fn internal(msg: impl Into<String>) -> Self {
        CliError::Internal(msg.into())
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::BadInput(m) => write!(f, "error: {m}"),
            CliError::Internal(m) => write!(f, "internal error: {m}"),
        }
    }
}

impl From<crate::api::Error> for CliError {
    fn from(e: crate::api::Error) -> Self {
        if e.is_bad_input() {
            CliError::BadInput(e.to_string())
        } else {
            CliError::Internal(e.to_string())
        }
    }
}

pub type CliResult = Result<(), CliError>;

/// Exit code after SIGINT/SIGTERM (128 + SIGINT, as shells report Ctrl-C).
pub const INTERRUPTED_EXIT: i32 = 130;

/// Installs the SIGINT/SIGTERM (and SIGHUP) handler: it removes this process's staging
/// folders ([`crate::report::staging`]) and exits with [`INTERRUPTED_EXIT`]. `ctrlc` runs
/// the handler on its own thread, not in signal context, so removing folders is safe there;
/// a commit in progress finishes first (the registry lock). Call once, at start.
pub fn install_interrupt_handler() {
    let installed = ctrlc::set_handler(|| {
        let _held = crate::report::staging::remove_all_registered();
        eprintln!("interrupted: no output written");
        std::process::exit(INTERRUPTED_EXIT);
    });
    if let Err(e) = installed {
        eprintln!("warning: cannot clean up on Ctrl-C ({e})");
    }
}
