//! `ltsconf`: check LTSP config files and show what a client gets from them.

use anyhow::{Context, Result, anyhow};
use clap::{Args, Parser, Subcommand, ValueEnum};
use netboot_bins::{EXIT_INVALID, EXIT_OK, EXIT_USAGE};
use netboot_ltsconf::{
    Client, Diagnostic, Dialect, Document, Id, Reason, Resolution, Severity, Span, normalize_mac,
    parse, render, resolve,
};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const EXAMPLES: &str = "\
Examples:
  ltsconf check /var/lib/tftpboot/ltsp/amd64/lts.conf
  ltsconf resolve --mac 52:54:00:12:34:56 --format shell lts.conf
  ltsconf resolve --hostname pc01 --ip 10.0.0.5 lts.conf        (JSON)
  eval \"$(ltsconf resolve --mac $MAC --format shell lts.conf)\"
  ltsconf explain --mac 52:54:00:12:34:56 KEEP_SYSTEM_SERVICES lts.conf
  ltsconf list --mac 52:54:00:12:34:56 RCFILE lts.conf >> /etc/rc.local

Exit status: 0 fine (warnings allowed), 1 the file has errors, 2 usage or I/O error.";

/// Check LTSP's lts.conf (LTSP5) and ltsp.conf (LTSP 19+) files, and show what each client
/// gets from them.
///
/// Reads both formats exactly as LTSP does (getltscfg for lts.conf, ini2sh for ltsp.conf),
/// but reports every problem with its line and column where LTSP would silently drop the rest
/// of the file, hang on a LIKE cycle, or break `eval`.
#[derive(Parser)]
#[command(name = "ltsconf", version, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Report every problem as FILE:LINE:COL: error|warning: ..., with the line and a caret.
    ///
    /// Exits 1 when any file has an error (something LTSP would lose, misread or choke on),
    /// 0 when there are only warnings or nothing at all.
    Check {
        #[command(flatten)]
        dialect: DialectArg,
        /// Files to check.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Print the variables one client gets, with LTSP's precedence for the file's dialect.
    ///
    /// Refuses a file with errors (exit 1, diagnostics on stderr) unless --lenient.
    Resolve {
        #[command(flatten)]
        dialect: DialectArg,
        #[command(flatten)]
        client: ClientArgs,
        /// Output: `json` (one object, KEY to value), `shell` (quoted so that `eval`
        /// reproduces every value byte for byte), or `getltscfg` (getltscfg -a's own unescaped
        /// `KEY="value"` + `export KEY` lines, for drop-in use).
        #[arg(long, value_enum, default_value_t = Format::Json)]
        format: Format,
        /// Resolve a file with errors the way getltscfg does: keep what comes before its first
        /// syntax error and drop the rest.
        #[arg(long)]
        lenient: bool,
        /// The lts.conf or ltsp.conf file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Print the values of a numbered family (RCFILE, FSTAB, PREINIT, ...) for one client,
    /// one per line, in the order LTSP runs them (lts5: `sort -V`, so RCFILE_2 before
    /// RCFILE_10).
    ///
    /// What LTSP's `env | sort -V | sed -n 's/^RCFILE_[^=]*=//p'` produced, without its
    /// breakage on values holding newlines (use -0 for those).
    List {
        #[command(flatten)]
        dialect: DialectArg,
        #[command(flatten)]
        client: ClientArgs,
        /// Resolve files with errors as getltscfg would (see `resolve --lenient`).
        #[arg(long)]
        lenient: bool,
        /// End each value with NUL instead of a newline.
        #[arg(short = '0', long = "null")]
        null: bool,
        /// The family, e.g. RCFILE (a trailing `_` is optional).
        #[arg(value_name = "FAMILY")]
        family: String,
        /// The lts.conf or ltsp.conf file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Show where a variable's value comes from for one client, and what it overrides.
    Explain {
        #[command(flatten)]
        dialect: DialectArg,
        #[command(flatten)]
        client: ClientArgs,
        /// Resolve files with errors as getltscfg would (see `resolve --lenient`).
        #[arg(long)]
        lenient: bool,
        /// The variable, e.g. KEEP_SYSTEM_SERVICES (case-insensitive in lts.conf).
        #[arg(value_name = "KEY")]
        key: String,
        /// Files to look in.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
}

#[derive(Args)]
struct DialectArg {
    /// File format: lts5 (LTSP5 lts.conf) or ltsp19 (LTSP 19+ ltsp.conf). Default: from the
    /// file name (*ltsp.conf is ltsp19), else from its contents ([clients], [common],
    /// [server] or INCLUDE= mean ltsp19).
    #[arg(long, value_enum, value_name = "DIALECT")]
    dialect: Option<DialectName>,
}

#[derive(Clone, Copy, ValueEnum)]
enum DialectName {
    Lts5,
    Ltsp19,
}

#[derive(Args)]
struct ClientArgs {
    /// The client's MAC address (any case; `:` or `-` separated).
    #[arg(long, value_name = "MAC")]
    mac: Option<String>,
    /// The client's IPv4 address.
    #[arg(long, value_name = "IP")]
    ip: Option<String>,
    /// The client's host name.
    #[arg(long, value_name = "NAME")]
    hostname: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Json,
    Shell,
    Getltscfg,
}

fn main() -> ExitCode {
    let _log = netboot_bins::init_logging();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { dialect, files } => check(dialect.dialect, &files),
        Command::Resolve {
            dialect,
            client,
            format,
            lenient,
            file,
        } => resolve_cmd(dialect.dialect, &client, format, lenient, &file),
        Command::List {
            dialect,
            client,
            lenient,
            null,
            family,
            file,
        } => list_cmd(dialect.dialect, &client, lenient, null, &family, &file),
        Command::Explain {
            dialect,
            client,
            lenient,
            key,
            files,
        } => explain(dialect.dialect, &client, lenient, &key, &files),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("ltsconf: {e:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// A file's text; invalid UTF-8 is replaced (with a warning) so the rest can still be read.
fn read(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "{}: warning: not valid UTF-8; invalid bytes are read as U+FFFD",
                path.display()
            );
            String::from_utf8_lossy(e.as_bytes()).into_owned()
        }
    })
}

fn dialect_for(arg: Option<DialectName>, path: &Path, text: &str) -> Dialect {
    match arg {
        Some(DialectName::Lts5) => Dialect::Lts5,
        Some(DialectName::Ltsp19) => Dialect::Ltsp19,
        None => {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default();
            if name.ends_with("ltsp.conf") {
                Dialect::Ltsp19
            } else if name.ends_with("lts.conf") {
                Dialect::Lts5
            } else {
                Dialect::detect(text)
            }
        }
    }
}

/// getltscfg reads at most this many files, the main one included (MAX_FILE_INCLUDES).
const MAX_FILES: usize = 10;

/// A file as LTSP reads it: for lts5, the files it `include`s are appended after it, as
/// getltscfg does (for a main file under 8 KiB), so that `check`, `resolve` and `explain` see
/// them; diagnostics are mapped back to the file and line they come from.
struct Input {
    dialect: Dialect,
    /// The main file's text followed by the included files' texts.
    text: String,
    /// Which bytes of `text` come from which file, in order.
    parts: Vec<Part>,
    /// Problems found while following includes, rendered.
    notes: Vec<String>,
}

struct Part {
    shown: String,
    start: usize,
    end: usize,
    dir: PathBuf,
    id: PathBuf,
}

impl Input {
    fn open(arg: Option<DialectName>, path: &Path) -> Result<Input> {
        let text = read(path)?;
        let dialect = dialect_for(arg, path, &text);
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut input = Input {
            dialect,
            parts: vec![Part {
                shown: path.display().to_string(),
                start: 0,
                end: text.len(),
                dir,
                id: std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
            }],
            text,
            notes: Vec::new(),
        };
        if dialect == Dialect::Lts5 {
            input.follow_includes();
        }
        Ok(input)
    }

    /// Appends every readable `include`d file (breadth first, each once, at most
    /// [`MAX_FILES`] in all); relative paths are read next to the including file.
    fn follow_includes(&mut self) {
        let mut k = 0;
        while k < self.parts.len() {
            let part_text = self.text[self.parts[k].start..self.parts[k].end].to_string();
            let doc = parse(&part_text, Dialect::Lts5);
            for inc in &doc.includes {
                let at = format!(
                    "{}:{}:{}",
                    self.parts[k].shown, inc.span.line, inc.span.column
                );
                let p = Path::new(inc.text);
                let full = if p.is_absolute() {
                    p.to_path_buf()
                } else {
                    self.parts[k].dir.join(p)
                };
                let id = std::fs::canonicalize(&full).unwrap_or_else(|_| full.clone());
                if self.parts.iter().any(|q| q.id == id) {
                    self.notes.push(format!(
                        "{at}: warning: `{}` is already included; getltscfg skips it too",
                        inc.text
                    ));
                    continue;
                }
                if self.parts.len() >= MAX_FILES {
                    self.notes.push(format!(
                        "{at}: warning: `{}` not read: getltscfg reads at most {MAX_FILES} files",
                        inc.text
                    ));
                    continue;
                }
                match std::fs::read(&full) {
                    Err(e) => self.notes.push(format!(
                        "{at}: warning: include `{}`: cannot read {}: {e}; getltscfg crashes on a client where it is missing",
                        inc.text,
                        full.display()
                    )),
                    Ok(bytes) => {
                        if !self.text.ends_with('\n') {
                            self.text.push('\n');
                        }
                        let start = self.text.len();
                        self.text.push_str(&String::from_utf8_lossy(&bytes));
                        self.parts.push(Part {
                            shown: full.display().to_string(),
                            start,
                            end: self.text.len(),
                            dir: full.parent().map(Path::to_path_buf).unwrap_or_default(),
                            id,
                        });
                    }
                }
            }
            k += 1;
        }
        if self.parts.len() > 1 && self.parts[0].end > 8192 {
            self.notes.push(format!(
                "{}: warning: over 8 KiB: getltscfg splices included files into the middle of this one (where its read buffer ends), not at the end as ltsconf reads them; keep files that include others small",
                self.parts[0].shown
            ));
        }
    }

    /// The file a span is in, that file's text, and the span relative to it.
    fn locate(&self, span: Span) -> (&str, &str, Span) {
        let part = self
            .parts
            .iter()
            .rev()
            .find(|p| p.start <= span.start)
            .unwrap_or(&self.parts[0]);
        let local = &self.text[part.start..part.end];
        let start = (span.start - part.start).min(local.len());
        let len = span.len().min(local.len() - start);
        (&part.shown, local, Span::at(local, start, len))
    }

    fn render(&self, d: &Diagnostic) -> String {
        let (shown, local, span) = self.locate(d.span);
        Diagnostic { span, ..d.clone() }.render(shown, local)
    }

    /// `FILE:LINE:COL` of a span.
    fn position(&self, span: Span) -> String {
        let (shown, _, s) = self.locate(span);
        format!("{shown}:{}:{}", s.line, s.column)
    }
}

fn count(diags: &[Diagnostic], severity: Severity) -> usize {
    diags.iter().filter(|d| d.severity == severity).count()
}

fn plural(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

fn check(dialect: Option<DialectName>, files: &[PathBuf]) -> Result<u8> {
    let mut code = EXIT_OK;
    for path in files {
        let input = Input::open(dialect, path)?;
        let doc = parse(&input.text, input.dialect);
        for note in &input.notes {
            println!("{note}");
        }
        for d in &doc.diagnostics {
            print!("{}", input.render(d));
        }
        let (errors, warnings) = (
            count(&doc.diagnostics, Severity::Error),
            count(&doc.diagnostics, Severity::Warning) + input.notes.len(),
        );
        let keys: usize = doc.sections.iter().map(|s| s.entries.len()).sum();
        let included = match input.parts.len() - 1 {
            0 => String::new(),
            n => format!(", {} included", plural(n, "file")),
        };
        println!(
            "{}: {} ({}, {}, {}{included}, {})",
            input.parts[0].shown,
            if errors == 0 { "ok" } else { "FAILED" },
            doc.dialect.name(),
            plural(doc.sections.len(), "section"),
            plural(keys, "entry").replace("entrys", "entries"),
            [plural(errors, "error"), plural(warnings, "warning")].join(", ")
        );
        if errors > 0 {
            code = EXIT_INVALID;
        }
    }
    Ok(code)
}

/// The client from the flags; the MAC is normalized to LTSP's lowercase colon form.
fn client_ids(args: &ClientArgs) -> Result<(Option<String>, Option<&str>, Option<&str>)> {
    let mac = match &args.mac {
        Some(m) => Some(normalize_mac(m).ok_or_else(|| {
            anyhow!("--mac {m}: not a MAC address (six hexadecimal octets, e.g. 52:54:00:12:34:56)")
        })?),
        None => None,
    };
    Ok((mac, args.ip.as_deref(), args.hostname.as_deref()))
}

/// Parses `input` and returns the document to resolve, or `None` (after printing the
/// errors) when it has errors and `lenient` is off.
fn load<'t>(input: &'t Input, lenient: bool) -> Option<Document<'t>> {
    for note in &input.notes {
        eprintln!("{note}");
    }
    let doc = parse(&input.text, input.dialect);
    if !doc.has_errors() {
        return Some(doc);
    }
    let shown = &input.parts[0].shown;
    for d in doc
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
    {
        eprint!("{}", input.render(d));
    }
    if lenient {
        eprintln!(
            "{shown}: {}; --lenient: using what getltscfg would keep",
            plural(count(&doc.diagnostics, Severity::Error), "error")
        );
        Some(doc.as_getltscfg_would())
    } else {
        eprintln!(
            "{shown}: {}: not resolving (fix them, or use --lenient to resolve what getltscfg would keep)",
            plural(count(&doc.diagnostics, Severity::Error), "error")
        );
        None
    }
}

/// Loads `path`, resolves it for the client in `args` and hands the result to `report`. A
/// file with errors exits 1 before `report` unless `lenient`.
fn with_resolution(
    dialect: Option<DialectName>,
    args: &ClientArgs,
    lenient: bool,
    path: &Path,
    report: impl FnOnce(&Resolution<'_, '_>) -> Result<u8>,
) -> Result<u8> {
    let (mac, ip, hostname) = client_ids(args)?;
    let client = Client {
        mac: mac.as_deref(),
        ip,
        hostname,
    };
    let input = Input::open(dialect, path)?;
    let Some(doc) = load(&input, lenient) else {
        return Ok(EXIT_INVALID);
    };
    report(&resolve(&doc, &client))
}

fn resolve_cmd(
    dialect: Option<DialectName>,
    args: &ClientArgs,
    format: Format,
    lenient: bool,
    path: &Path,
) -> Result<u8> {
    with_resolution(dialect, args, lenient, path, |r| {
        print_resolution(r, format)
    })
}

fn print_resolution(r: &Resolution<'_, '_>, format: Format) -> Result<u8> {
    for v in &r.vars {
        if !r.entry(v.setting).value.is_literal() {
            eprintln!(
                "ltsconf: note: {} is shell text that LTSP expands on the client; it is shown as written",
                v.name
            );
        }
    }
    match format {
        Format::Json => print!("{}", json(r)),
        Format::Shell => {
            let (sh, skipped) = render::shell(r);
            print!("{sh}");
            for s in &skipped {
                eprintln!("ltsconf: left out of the shell output: {s}");
            }
            if !skipped.is_empty() {
                return Ok(EXIT_INVALID);
            }
        }
        Format::Getltscfg => {
            print!("{}", render::getltscfg(r));
            for name in render::unsafe_values(r) {
                eprintln!(
                    "ltsconf: warning: {name}'s value holds a quote, `$`, backtick, backslash or newline that getltscfg's format does not escape: `eval` will break or run it (use --format shell)"
                );
            }
        }
    }
    Ok(EXIT_OK)
}

fn list_cmd(
    dialect: Option<DialectName>,
    args: &ClientArgs,
    lenient: bool,
    null: bool,
    family: &str,
    path: &Path,
) -> Result<u8> {
    let prefix = format!("{}_", family.trim_end_matches('_'));
    let end = if null { '\0' } else { '\n' };
    with_resolution(dialect, args, lenient, path, |r| {
        let mut out = String::new();
        for v in r.list(&prefix) {
            out.push_str(&v.value);
            out.push(end);
        }
        print!("{out}");
        Ok(EXIT_OK)
    })
}

fn json(r: &Resolution<'_, '_>) -> String {
    if r.vars.is_empty() {
        return "{}\n".to_string();
    }
    let mut out = String::from("{\n");
    for (i, v) in r.vars.iter().enumerate() {
        let sep = if i + 1 < r.vars.len() { "," } else { "" };
        out.push_str(&format!(
            "  {}: {}{sep}\n",
            serde_json::Value::from(&*v.name),
            serde_json::Value::from(&*v.value)
        ));
    }
    out.push_str("}\n");
    out
}

fn id_name(id: Id) -> &'static str {
    match id {
        Id::Hostname => "host name",
        Id::Ip => "IP address",
        Id::Mac => "MAC address",
    }
}

/// Why a section applies, in words.
fn reason(doc: &Document<'_>, reason: Reason) -> String {
    let name = |i: usize| format!("[{}]", doc.sections[i].name.text);
    match reason {
        Reason::Exact(id) => format!("its name is the client's {}", id_name(id)),
        Reason::Like { from } => format!("LIKE in {}", name(from)),
        Reason::Glob(id) => format!("glob matching the client's {}", id_name(id)),
        Reason::Default => "applies to every client".to_string(),
        Reason::Unnamed => "lines before the first section".to_string(),
        Reason::Special(s) => format!("LTSP runs [{s}] for every client"),
        Reason::Pattern(id) => format!("first section matching the client's {}", id_name(id)),
        Reason::Include { from } => format!("INCLUDE= in {}", name(from)),
    }
}

fn section_label(doc: &Document<'_>, i: usize) -> String {
    let s = &doc.sections[i];
    if s.unnamed {
        "(before any section)".to_string()
    } else {
        format!("[{}]", s.name.text)
    }
}

fn explain(
    dialect: Option<DialectName>,
    args: &ClientArgs,
    lenient: bool,
    key: &str,
    files: &[PathBuf],
) -> Result<u8> {
    let (mac, ip, hostname) = client_ids(args)?;
    let client = Client {
        mac: mac.as_deref(),
        ip,
        hostname,
    };
    let mut code = EXIT_OK;
    for path in files {
        let input = Input::open(dialect, path)?;
        let shown = &input.parts[0].shown;
        let Some(doc) = load(&input, lenient) else {
            code = EXIT_INVALID;
            continue;
        };
        let r = resolve(&doc, &client);
        println!(
            "{shown} ({}): sections that apply, strongest first:",
            doc.dialect.name()
        );
        let order: Vec<usize> = match doc.dialect {
            Dialect::Lts5 => (0..r.chain.len()).collect(),
            Dialect::Ltsp19 => (0..r.chain.len()).rev().collect(),
        };
        for i in order {
            let link = r.chain[i];
            println!(
                "  {:<24} {:<28} {}",
                section_label(&doc, link.section),
                input.position(doc.sections[link.section].header),
                reason(&doc, link.reason)
            );
        }
        let settings = r.explain(key);
        match r.get(key) {
            Some(v) => println!("{} = {}", v.name, render::quote_for_display(&v.value)),
            None if settings.is_empty() => println!("{key} is not set for this client"),
            None => println!("{key} is unset for this client (NONE)"),
        }
        for (n, s) in settings.iter().enumerate() {
            let e = r.entry(*s);
            let link = r.link(*s);
            println!(
                "  {} {} in {} ({}): {} = {}",
                if n == 0 { "set by   " } else { "overrides" },
                input.position(e.key.span),
                section_label(&doc, link.section),
                reason(&doc, link.reason),
                e.key.text,
                render::quote_for_display(&e.value.text())
            );
        }
    }
    Ok(code)
}
