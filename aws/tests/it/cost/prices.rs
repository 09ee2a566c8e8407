//! AWS's list prices (us-east-1, on-demand, past each free tier) as the pages named
//! gave them on the date below, and the report: units per event and dollars per
//! million events, line by line.

use std::fmt;

use super::Deployed;
use super::units::Units;

/// When the prices below were taken from their pages.
pub(crate) const AS_OF: &str = "2026-12-07";

/// One priced unit: what it is, dollars per million of it, and where that price
/// is published.
struct Price {
    what: &'static str,
    per_million: f64,
    source: &'static str,
    units: fn(&Units) -> f64,
}

fn prices(arm: bool) -> [Price; 10] {
    [
        Price {
            what: "API Gateway HTTP API requests",
            per_million: 1.00,
            source: "aws.amazon.com/api-gateway/pricing (first 300 M a month)",
            units: |u| u.api_requests,
        },
        Price {
            what: "Lambda requests",
            per_million: 0.20,
            source: "aws.amazon.com/lambda/pricing",
            units: |u| u.invocations,
        },
        Price {
            what: if arm {
                "Lambda GB-seconds (arm64)"
            } else {
                "Lambda GB-seconds (x86_64)"
            },
            // $0.0000133334 (arm64) and $0.0000166667 (x86) per GB-second.
            per_million: if arm { 13.3334 } else { 16.6667 },
            source: "aws.amazon.com/lambda/pricing (first 6 B GB-s a month)",
            units: |u| u.gb_seconds,
        },
        Price {
            what: "SQS FIFO requests (64 KB each)",
            per_million: 0.50,
            source: "aws.amazon.com/sqs/pricing",
            units: |u| u.sqs_fifo,
        },
        Price {
            what: "SQS standard requests (64 KB each)",
            per_million: 0.40,
            source: "aws.amazon.com/sqs/pricing",
            units: |u| u.sqs_standard,
        },
        Price {
            what: "DynamoDB write request units",
            per_million: 0.625,
            source: "aws.amazon.com/dynamodb/pricing/on-demand (since 2024-11-01)",
            units: |u| u.write_units,
        },
        Price {
            what: "DynamoDB read request units",
            per_million: 0.125,
            source: "aws.amazon.com/dynamodb/pricing/on-demand (since 2024-11-01)",
            units: |u| u.read_units,
        },
        Price {
            what: "Secrets Manager API calls",
            // $0.05 per 10,000.
            per_million: 5.00,
            source: "aws.amazon.com/secrets-manager/pricing",
            units: |u| u.secrets_calls,
        },
        Price {
            what: "S3 GET requests",
            // $0.0004 per 1,000.
            per_million: 0.40,
            source: "aws.amazon.com/s3/pricing",
            units: |u| u.s3_requests,
        },
        Price {
            what: "CloudWatch Logs ingested (bytes)",
            // $0.50 per GB: per million bytes, $0.50 / 1,073.74.
            per_million: 0.50 / 1073.741824,
            source: "aws.amazon.com/cloudwatch/pricing (Lambda logs, first 10 TB)",
            units: |u| u.log_bytes,
        },
    ]
}

/// Dollars per million events of `units` (per event).
pub(crate) fn dollars(arm: bool, units: &Units) -> f64 {
    prices(arm)
        .iter()
        .map(|p| (p.units)(units) * p.per_million)
        .sum()
}

/// One run: busy or trickling, its units per event, and what reached the partners.
type Measured = (bool, Units, String);

/// Each workload's units per event, busy and trickling, and the model's inputs.
pub(crate) struct Report {
    inputs: String,
    arm: bool,
    rows: Vec<(&'static str, Vec<Measured>)>,
}

impl Report {
    pub(crate) fn new(d: &Deployed, events: usize) -> Report {
        let inputs = format!(
            "{events} events per workload and pace; functions at {} MB ({}); Lambda's \
             start and report lines {}; partner latency assumed: GHL {} ms an answer, Meta {} ms a call",
            d.memory_mb,
            if d.arm { "arm64" } else { "x86_64" },
            if d.system_lines {
                "kept"
            } else {
                "off (system log level WARN)"
            },
            d.ghl_ms,
            d.meta_ms,
        );
        Report {
            inputs,
            arm: d.arm,
            rows: Vec::new(),
        }
    }

    pub(crate) fn add(&mut self, workload: &'static str, busy: bool, units: Units, seen: String) {
        match self.rows.iter_mut().find(|(w, _)| *w == workload) {
            Some((_, runs)) => runs.push((busy, units, seen)),
            None => self.rows.push((workload, vec![(busy, units, seen)])),
        }
    }

    /// Dollars per million events of each workload and pace.
    pub(crate) fn totals(&self) -> Vec<(&'static str, bool, f64)> {
        self.rows
            .iter()
            .flat_map(|(w, runs)| {
                runs.iter()
                    .map(move |(b, u, _)| (*w, *b, dollars(self.arm, u)))
            })
            .collect()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "cost model: {}\n", self.inputs)?;
        writeln!(f, "prices (us-east-1, list, as of {AS_OF}):")?;
        for p in prices(self.arm) {
            writeln!(
                f,
                "  {:<38} ${:>9.4} a million   {}",
                p.what, p.per_million, p.source
            )?;
        }
        for (workload, runs) in &self.rows {
            writeln!(f, "\n{workload}")?;
            for (busy, _, seen) in runs {
                let pace = if *busy { "busy" } else { "trickle" };
                writeln!(f, "  {pace}: {seen}")?;
            }
            write!(f, "  | unit | ")?;
            for (busy, _, _) in runs {
                let pace = if *busy { "busy" } else { "trickle" };
                write!(f, "{pace}: per event | $ a million | ")?;
            }
            writeln!(f)?;
            for p in prices(self.arm) {
                write!(f, "  | {} | ", p.what)?;
                for (_, units, _) in runs {
                    let n = (p.units)(units);
                    write!(f, "{n:.4} | {:.3} | ", n * p.per_million)?;
                }
                writeln!(f)?;
            }
            write!(f, "  | **total** | ")?;
            for (_, units, _) in runs {
                write!(f, " | **{:.2}** | ", dollars(self.arm, units))?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}
