//! `redress complaint import`: streams a CSV file into SubmitComplaint, several rows in
//! flight, with a progress bar, a line per bad row, and a summary.

use std::io::BufReader;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use redress_intake::domain::import::{Format as CsvFormat, ImportOptions, ImportRow, Importer, RowError};
use redress_proto::redress::intake::v1::SubmitComplaintRequest;
use redress_proto::redress::intake::v1::intake_service_client::IntakeServiceClient;
use tokio::sync::{Mutex, mpsc};
use tonic_types::StatusExt;

use crate::output::Format;
use crate::{Authenticated, Failure, print, usage};

#[derive(Args)]
pub struct Import {
    /// The CSV file; `-` reads standard input.
    file: PathBuf,
    /// Its schema.
    #[arg(long, value_enum)]
    format: Schema,
    /// Name of the source system, part of each request id and external reference (default:
    /// `cfpb` for the CFPB export, `import` otherwise).
    #[arg(long)]
    source: Option<String>,
    /// Organisation unit owning the imported complaints (native rows may name their own).
    #[arg(long)]
    org_unit: String,
    /// IANA zone of dates without a time (e.g. CFPB's "Date received").
    #[arg(long, default_value = "Asia/Shanghai")]
    time_zone: String,
    /// Rows submitted at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
}

#[derive(Clone, Copy, ValueEnum)]
enum Schema {
    /// Redress's own columns: source_id, received_at, channel, name, id_type, id_number,
    /// phone, email, address, organisation, uscc, institution, branch, staff_name, staff_id,
    /// demand, facts, staff_notes, org_unit, first_contact_staff_id, first_contact_subject,
    /// first_contact_org_unit, first_contact_department, source, product.
    Native,
    /// The US CFPB consumer complaint database export.
    Cfpb,
}

/// How the rows went.
#[derive(Default)]
struct Tally {
    rows: u64,
    imported: u64,
    present: u64,
    failed: u64,
}

fn describe(status: &tonic::Status) -> String {
    let mut text = format!("{:?}: {}", status.code(), status.message());
    if let Some(bad) = status.get_error_details().bad_request() {
        for v in &bad.field_violations {
            text.push_str(&format!("; {}: {}", v.field, v.description));
        }
    }
    text
}

pub(crate) async fn run(
    client: IntakeServiceClient<Authenticated>,
    args: Import,
    format: Format,
) -> Result<ExitCode, Failure> {
    let time_zone: chrono_tz::Tz =
        args.time_zone.parse().map_err(|_| usage(format!("--time-zone {:?} is not an IANA zone", args.time_zone)))?;
    let (schema, default_source) = match args.format {
        Schema::Native => (CsvFormat::Native, "import"),
        Schema::Cfpb => (CsvFormat::Cfpb, "cfpb"),
    };
    let options = ImportOptions {
        format: schema,
        source: args.source.clone().unwrap_or_else(|| default_source.to_owned()),
        org_unit: args.org_unit.clone(),
        time_zone,
    };
    if options.source.is_empty() || options.source.contains(char::is_whitespace) {
        return Err(usage("--source must be a non-empty name without spaces"));
    }
    // Count the rows first when reading a file, for a progress bar with an end.
    let total = if args.file.as_os_str() == "-" {
        None
    } else {
        let file = std::fs::File::open(&args.file)
            .map_err(|e| Failure::Other(format!("cannot open {}: {e}", args.file.display())))?;
        Some(csv::Reader::from_reader(BufReader::new(file)).records().count() as u64)
    };
    let progress = total.map_or_else(ProgressBar::new_spinner, ProgressBar::new);
    progress.set_style(
        ProgressStyle::with_template("{spinner} {pos}/{len} rows [{elapsed_precise}] {wide_bar} {per_sec} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );

    // Rows are read on a blocking thread and handed over as they come.
    let (rows_tx, rows_rx) = mpsc::channel::<Result<ImportRow, RowError>>(256);
    let (path, reader_options) = (args.file.clone(), options.clone());
    let reader = tokio::task::spawn_blocking(move || -> Result<(), String> {
        let input: Box<dyn std::io::Read> = if path.as_os_str() == "-" {
            Box::new(std::io::stdin())
        } else {
            Box::new(std::fs::File::open(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?)
        };
        let importer = Importer::new(BufReader::new(input), reader_options).map_err(|e| e.to_string())?;
        for row in importer {
            if rows_tx.blocking_send(row).is_err() {
                break;
            }
        }
        Ok(())
    });

    let started = std::time::SystemTime::now();
    let since_epoch = started.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let started_at = (since_epoch.as_secs() as i64, i64::from(since_epoch.subsec_nanos()));
    let rows_rx = Arc::new(Mutex::new(rows_rx));
    let tally = Arc::new(std::sync::Mutex::new(Tally::default()));
    let mut workers = Vec::new();
    for _ in 0..args.concurrency.clamp(1, 256) {
        let (rows_rx, tally, progress, mut client) = (rows_rx.clone(), tally.clone(), progress.clone(), client.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let Some(row) = rows_rx.lock().await.recv().await else { return };
                let outcome = match row {
                    Err(e) => Err(format!("line {} ({}): {}", e.line, e.source_id, e.error)),
                    Ok(row) => {
                        let (line, source_id) = (row.line, row.source_id.clone());
                        let request =
                            SubmitComplaintRequest { request_id: row.request_id, complaint: Some(row.complaint) };
                        match client.submit_complaint(request).await {
                            // Recorded before this import began: it was imported already.
                            Ok(r) => Ok(r
                                .into_inner()
                                .complaint
                                .and_then(|c| c.create_time)
                                .is_some_and(|t| (t.seconds, i64::from(t.nanos)) < started_at)),
                            Err(status) => Err(format!("line {line} ({source_id}): {}", describe(&status))),
                        }
                    }
                };
                let mut t = tally.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                t.rows += 1;
                match outcome {
                    Ok(true) => t.present += 1,
                    Ok(false) => t.imported += 1,
                    Err(message) => {
                        t.failed += 1;
                        progress.suspend(|| eprintln!("{message}"));
                    }
                }
                progress.inc(1);
            }
        }));
    }
    for w in workers {
        w.await.map_err(|e| Failure::Other(format!("import worker failed: {e}")))?;
    }
    progress.finish_and_clear();
    reader.await.map_err(|e| Failure::Other(format!("reading the file failed: {e}")))?.map_err(Failure::Other)?;
    let t = tally.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let elapsed = started.elapsed().unwrap_or_default();
    let summary = match format {
        Format::Text => format!(
            "imported {}, already present {}, failed {} (of {} rows) in {:.1}s\n",
            t.imported,
            t.present,
            t.failed,
            t.rows,
            elapsed.as_secs_f64()
        ),
        Format::Json => format!(
            "{}\n",
            serde_json::json!({
                "rows": t.rows,
                "imported": t.imported,
                "already_present": t.present,
                "failed": t.failed,
                "seconds": elapsed.as_secs_f64(),
            })
        ),
    };
    print(&summary)?;
    Ok(if t.failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
