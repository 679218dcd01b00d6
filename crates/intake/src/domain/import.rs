//! Bulk import of complaints from other systems: the native CSV schema and the US CFPB public
//! complaint database schema. Rows are read one at a time (any size of file), each mapped to
//! a complaint whose external reference and request id derive from its source id, so
//! importing the same file again, however late, creates nothing new. A row that cannot be mapped is reported with its line and the reason
//! and the import goes on.

use std::collections::HashMap;
use std::io::Read;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use redress_proto::redress::common::v1::Channel;
use redress_proto::redress::intake::v1::{
    Complainant, ComplainedParty, Complaint, ComplaintSource, FirstContact, IdDocumentType, NaturalPerson,
    Organisation, complainant::Party,
};

/// A source format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Redress's own columns (see [`NATIVE_COLUMNS`]).
    Native,
    /// The CFPB consumer complaint database export.
    Cfpb,
}

/// Columns of the native schema; `source_id`, `received_at`, `channel`, `name` (or
/// `organisation`), `institution`, `demand`, `facts` and `org_unit` are required. The
/// `first_contact_*` columns name the member of staff who took the complaint (a staff id is
/// then required, as on submission); `source` is `consumer`, `partner` or `staff` (a consumer
/// when empty); `product` names the product or service complained about (optional).
pub const NATIVE_COLUMNS: &[&str] = &[
    "source_id",
    "received_at",
    "channel",
    "name",
    "id_type",
    "id_number",
    "phone",
    "email",
    "address",
    "organisation",
    "uscc",
    "institution",
    "branch",
    "staff_name",
    "staff_id",
    "demand",
    "facts",
    "staff_notes",
    "org_unit",
    "first_contact_staff_id",
    "first_contact_subject",
    "first_contact_org_unit",
    "first_contact_department",
    "source",
    "product",
];

/// Columns of the CFPB export this mapping reads.
pub const CFPB_COLUMNS: &[&str] = &[
    "Date received",
    "Product",
    "Sub-product",
    "Issue",
    "Sub-issue",
    "Consumer complaint narrative",
    "Company",
    "State",
    "ZIP code",
    "Tags",
    "Submitted via",
    "Date sent to company",
    "Company response to consumer",
    "Timely response?",
    "Consumer disputed?",
    "Complaint ID",
];

/// One row mapped to a submission.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportRow {
    /// 1-based line of the row in the file (the header is line 1).
    pub line: u64,
    /// The row's id in its source system.
    pub source_id: String,
    /// Idempotency key: the same source row always maps to the same request id.
    pub request_id: String,
    pub complaint: Complaint,
}

/// A row that could not be mapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub line: u64,
    pub source_id: String,
    pub error: String,
}

/// Settings of an import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub format: Format,
    /// Source name in request ids and external references, e.g. "cfpb" or "legacy-crm".
    pub source: String,
    /// Organisation unit owning the imported complaints (native rows may name their own).
    pub org_unit: String,
    /// Zone of dates without a time (CFPB's "Date received").
    pub time_zone: Tz,
}

/// Reads rows of `input` lazily.
pub struct Importer<R: Read> {
    reader: csv::Reader<R>,
    columns: HashMap<String, usize>,
    options: ImportOptions,
    record: csv::StringRecord,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read the CSV header: {0}")]
    Header(String),
    #[error("the CSV lacks required column(s): {0}")]
    MissingColumns(String),
}

impl<R: Read> Importer<R> {
    pub fn new(input: R, options: ImportOptions) -> Result<Self, ImportError> {
        let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(input);
        let headers = reader.headers().map_err(|e| ImportError::Header(e.to_string()))?.clone();
        let columns: HashMap<String, usize> =
            headers.iter().enumerate().map(|(i, h)| (h.trim().trim_start_matches('\u{feff}').to_owned(), i)).collect();
        let required: &[&str] = match options.format {
            Format::Cfpb => &["Date received", "Product", "Issue", "Company", "Complaint ID"],
            Format::Native => &["source_id", "received_at", "channel", "institution", "demand", "facts"],
        };
        let missing: Vec<&str> = required.iter().copied().filter(|c| !columns.contains_key(*c)).collect();
        if !missing.is_empty() {
            return Err(ImportError::MissingColumns(missing.join(", ")));
        }
        Ok(Self { reader, columns, options, record: csv::StringRecord::new() })
    }

    fn field(&self, column: &str) -> String {
        self.columns.get(column).and_then(|i| self.record.get(*i)).map(str::trim).unwrap_or_default().to_owned()
    }
}

impl<R: Read> Iterator for Importer<R> {
    type Item = Result<ImportRow, RowError>;

    fn next(&mut self) -> Option<Self::Item> {
        let read = self.reader.read_record(&mut self.record);
        let line = self.record.position().map_or(0, csv::Position::line);
        match read {
            Ok(false) => None,
            Err(e) => {
                let line = e.position().map_or(line, csv::Position::line);
                Some(Err(RowError { line, source_id: String::new(), error: format!("unreadable row: {e}") }))
            }
            Ok(true) => Some(match self.options.format {
                Format::Cfpb => self.cfpb(line),
                Format::Native => self.native(line),
            }),
        }
    }
}

/// Dates as CFPB writes them ("2023-05-04" or "05/04/2023"), at local midnight in `tz`.
fn parse_date(value: &str, tz: Tz) -> Option<DateTime<Utc>> {
    let date = NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(value, "%m/%d/%Y"))
        .or_else(|_| NaiveDate::parse_from_str(value, "%Y/%m/%d"))
        .ok()?;
    tz.from_local_datetime(&date.and_hms_opt(0, 0, 0)?).earliest().map(|t| t.with_timezone(&Utc))
}

/// RFC 3339 instants, or local date-times / dates in `tz`.
fn parse_instant(value: &str, tz: Tz) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Some(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(value, format) {
            return tz.from_local_datetime(&t).earliest().map(|t| t.with_timezone(&Utc));
        }
    }
    parse_date(value, tz)
}

fn cfpb_channel(via: &str) -> Channel {
    match via.to_ascii_lowercase().as_str() {
        "web" => Channel::Online,
        "phone" => Channel::Phone,
        "email" => Channel::Email,
        "postal mail" => Channel::Letter,
        "referral" | "web referral" => Channel::ThirdParty,
        _ => Channel::Other,
    }
}

/// Native channel names: the proto names without prefix, case-insensitive, `-` or `_`.
pub fn channel_named(name: &str) -> Option<Channel> {
    let normalised = name.trim().to_ascii_uppercase().replace('-', "_");
    Channel::from_str_name(&format!("CHANNEL_{normalised}")).filter(|c| *c != Channel::Unspecified)
}

/// Native source names: `consumer`, `partner`, `staff`, or the proto names without prefix;
/// `Unspecified` (a consumer) when empty, `None` when unknown.
pub fn source_named(name: &str) -> Option<ComplaintSource> {
    let normalised = name.trim().to_ascii_uppercase().replace('-', "_");
    match normalised.as_str() {
        "" => Some(ComplaintSource::Unspecified),
        "CONSUMER" => Some(ComplaintSource::ExternalConsumer),
        "PARTNER" => Some(ComplaintSource::ExternalPartner),
        "STAFF" => Some(ComplaintSource::InternalStaff),
        other => ComplaintSource::from_str_name(&format!("COMPLAINT_SOURCE_{other}"))
            .filter(|s| *s != ComplaintSource::Unspecified),
    }
}

fn id_type_named(name: &str) -> IdDocumentType {
    match name.trim().to_ascii_lowercase().replace('-', "_").as_str() {
        "resident_id" | "身份证" => IdDocumentType::ResidentId,
        "passport" | "护照" => IdDocumentType::Passport,
        "travel_permit" => IdDocumentType::TravelPermit,
        "foreign_permanent_resident" => IdDocumentType::ForeignPermanentResident,
        "" => IdDocumentType::Unspecified,
        _ => IdDocumentType::Other,
    }
}

impl<R: Read> Importer<R> {
    fn cfpb(&self, line: u64) -> Result<ImportRow, RowError> {
        let source_id = self.field("Complaint ID");
        let fail = |error: String| RowError { line, source_id: source_id.clone(), error };
        if source_id.is_empty() {
            return Err(fail("Complaint ID is empty".to_owned()));
        }
        let received = parse_date(&self.field("Date received"), self.options.time_zone)
            .ok_or_else(|| fail(format!("Date received {:?} is not a date", self.field("Date received"))))?;
        let company = self.field("Company");
        if company.is_empty() {
            return Err(fail("Company is empty".to_owned()));
        }
        let joined = |a: &str, b: &str| {
            let (a, b) = (self.field(a), self.field(b));
            if b.is_empty() { a } else { format!("{a} / {b}") }
        };
        let product = joined("Product", "Sub-product");
        let issue = joined("Issue", "Sub-issue");
        let narrative = self.field("Consumer complaint narrative");
        let facts = if narrative.is_empty() {
            format!("Product: {product}. Issue: {issue}. (No consumer narrative was published.)")
        } else {
            narrative
        };
        let place =
            [self.field("State"), self.field("ZIP code")].into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>();
        let mut notes = vec![
            format!("Imported from CFPB complaint {source_id}."),
            format!("Product: {product}."),
            format!("Issue: {issue}."),
        ];
        for (label, column) in [
            ("Tags", "Tags"),
            ("Date sent to company", "Date sent to company"),
            ("Company response to consumer", "Company response to consumer"),
            ("Timely response", "Timely response?"),
            ("Consumer disputed", "Consumer disputed?"),
            ("Submitted via", "Submitted via"),
        ] {
            let value = self.field(column);
            if !value.is_empty() {
                notes.push(format!("{label}: {value}."));
            }
        }
        let complaint = Complaint {
            channel: cfpb_channel(&self.field("Submitted via")) as i32,
            receive_time: Some(redress_platform::time::to_timestamp(received)),
            complainant: Some(Complainant {
                party: Some(Party::Person(NaturalPerson {
                    // The public export does not identify consumers.
                    full_name: format!("CFPB consumer {source_id}"),
                    address: place.join(" "),
                    ..NaturalPerson::default()
                })),
            }),
            complained_party: Some(ComplainedParty { institution: company, ..ComplainedParty::default() }),
            demand: format!("Issue: {issue} (the export records no demand)."),
            facts,
            staff_notes: notes.join(" "),
            org_unit: self.options.org_unit.clone(),
            external_reference: format!("{}:{source_id}", self.options.source),
            ..Complaint::default()
        };
        Ok(ImportRow { line, request_id: format!("import:{}:{source_id}", self.options.source), source_id, complaint })
    }

    fn native(&self, line: u64) -> Result<ImportRow, RowError> {
        let source_id = self.field("source_id");
        let fail = |error: String| RowError { line, source_id: source_id.clone(), error };
        if source_id.is_empty() {
            return Err(fail("source_id is empty".to_owned()));
        }
        let received = parse_instant(&self.field("received_at"), self.options.time_zone)
            .ok_or_else(|| fail(format!("received_at {:?} is not a time", self.field("received_at"))))?;
        let channel = channel_named(&self.field("channel"))
            .ok_or_else(|| fail(format!("channel {:?} is not a channel", self.field("channel"))))?;
        let party = if self.field("organisation").is_empty() {
            Party::Person(NaturalPerson {
                full_name: self.field("name"),
                id_document_type: id_type_named(&self.field("id_type")) as i32,
                id_number: self.field("id_number"),
                phone: self.field("phone"),
                email: self.field("email"),
                address: self.field("address"),
            })
        } else {
            Party::Organisation(Organisation {
                name: self.field("organisation"),
                unified_social_credit_code: self.field("uscc"),
                address: self.field("address"),
                contact_name: self.field("name"),
                contact_phone: self.field("phone"),
                ..Organisation::default()
            })
        };
        let org_unit =
            Some(self.field("org_unit")).filter(|u| !u.is_empty()).unwrap_or_else(|| self.options.org_unit.clone());
        let source = source_named(&self.field("source"))
            .ok_or_else(|| fail(format!("source {:?} is not consumer, partner or staff", self.field("source"))))?;
        // Only what the row says: whoever runs the import did not take these complaints.
        let first_contact = FirstContact {
            subject: self.field("first_contact_subject"),
            staff_id: self.field("first_contact_staff_id"),
            org_unit: self.field("first_contact_org_unit"),
            department: self.field("first_contact_department"),
            recorded_by: String::new(),
        };
        let complaint = Complaint {
            channel: channel as i32,
            receive_time: Some(redress_platform::time::to_timestamp(received)),
            complainant: Some(Complainant { party: Some(party) }),
            complained_party: Some(ComplainedParty {
                institution: self.field("institution"),
                branch: self.field("branch"),
                staff_name: self.field("staff_name"),
                staff_id: self.field("staff_id"),
            }),
            demand: self.field("demand"),
            facts: self.field("facts"),
            staff_notes: self.field("staff_notes"),
            org_unit,
            external_reference: format!("{}:{source_id}", self.options.source),
            first_contact: (first_contact != FirstContact::default()).then_some(first_contact),
            source: source as i32,
            product: self.field("product"),
            ..Complaint::default()
        };
        Ok(ImportRow { line, request_id: format!("import:{}:{source_id}", self.options.source), source_id, complaint })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn options(format: Format) -> ImportOptions {
        ImportOptions {
            format,
            source: if format == Format::Cfpb { "cfpb" } else { "legacy" }.to_owned(),
            org_unit: "institutions/demo-bank".to_owned(),
            time_zone: chrono_tz::America::New_York,
        }
    }

    const CFPB: &str = "Date received,Product,Sub-product,Issue,Sub-issue,Consumer complaint narrative,Company public response,Company,State,ZIP code,Tags,Consumer consent provided?,Submitted via,Date sent to company,Company response to consumer,Timely response?,Consumer disputed?,Complaint ID
2023-05-04,Credit card or prepaid card,General-purpose credit card or charge card,Fees or interest,Charged too much interest,\"I was charged interest on a balance I paid in full, \"\"twice\"\".
They refused to refund it.\",,EXAMPLE BANK N.A.,NY,100XX,Servicemember,Consent provided,Web,2023-05-04,Closed with monetary relief,Yes,N/A,6912345
05/06/2023,Mortgage,Conventional home mortgage,Trouble during payment process,,,Company has responded,Example Mortgage LLC,CA,,,,Phone,05/08/2023,Closed with explanation,Yes,,6912346
not a date,Mortgage,,Issue,,,,X,,,,,Web,,,,,6912347
";

    #[test]
    fn cfpb_rows_map_to_complaints_and_bad_rows_are_reported() {
        let rows: Vec<_> = Importer::new(CFPB.as_bytes(), options(Format::Cfpb)).unwrap().collect();
        assert_eq!(rows.len(), 3);
        let first = rows[0].as_ref().unwrap();
        assert_eq!((first.line, first.request_id.as_str()), (2, "import:cfpb:6912345"));
        let c = &first.complaint;
        assert!(c.facts.contains("\"twice\".\nThey refused"), "multi-line quoted narrative kept verbatim");
        assert_eq!(c.channel, Channel::Online as i32);
        assert_eq!(c.complained_party.as_ref().unwrap().institution, "EXAMPLE BANK N.A.");
        // Midnight of the received date in New York.
        assert_eq!(c.receive_time.unwrap().seconds, 1_683_172_800);
        assert!(c.staff_notes.contains("Tags: Servicemember.") && c.staff_notes.contains("Timely response: Yes."));
        assert_eq!(c.external_reference, "cfpb:6912345");
        let second = rows[1].as_ref().unwrap();
        assert_eq!(second.complaint.channel, Channel::Phone as i32);
        assert!(second.complaint.facts.contains("Trouble during payment process"), "{}", second.complaint.facts);
        let bad = rows[2].as_ref().unwrap_err();
        assert_eq!((bad.line, bad.source_id.as_str()), (5, "6912347"));
        assert!(bad.error.contains("Date received"), "{}", bad.error);
    }

    #[test]
    fn native_rows_carry_people_organisations_and_any_script() {
        let csv = "source_id,received_at,channel,name,id_type,id_number,phone,organisation,institution,demand,facts,org_unit\n\
                   A-1,2024-03-01T09:30:00+08:00,mobile-app,王小明,resident_id,11010519491231002X,13812345678,,示例银行,退款,\"多扣年费，\n请核实\",\n\
                   A-2,2024-03-02 10:00:00,counter,李经理,,,13900001111,某某贸易有限公司,示例银行,说明,Facts in English — and Ελληνικά,institutions/demo-bank/branches/sh\n\
                   A-3,yesterday,phone,x,,,,,示例银行,d,f,\n";
        let rows: Vec<_> = Importer::new(csv.as_bytes(), options(Format::Native)).unwrap().collect();
        let a1 = rows[0].as_ref().unwrap();
        assert_eq!(a1.complaint.channel, Channel::MobileApp as i32);
        assert_eq!(a1.complaint.facts, "多扣年费，\n请核实");
        assert_eq!(a1.complaint.org_unit, "institutions/demo-bank");
        let Some(Party::Person(p)) = a1.complaint.complainant.as_ref().unwrap().party.as_ref() else { panic!() };
        assert_eq!((p.id_document_type, p.phone.as_str()), (IdDocumentType::ResidentId as i32, "13812345678"));
        let a2 = rows[1].as_ref().unwrap();
        assert!(matches!(a2.complaint.complainant.as_ref().unwrap().party, Some(Party::Organisation(_))));
        assert_eq!(a2.complaint.org_unit, "institutions/demo-bank/branches/sh");
        assert!(a2.complaint.facts.contains("Ελληνικά"));
        assert!(rows[2].as_ref().unwrap_err().error.contains("received_at"));
    }

    #[test]
    fn native_rows_may_name_their_first_contact_and_source() {
        let csv = "source_id,received_at,channel,name,institution,demand,facts,first_contact_staff_id,first_contact_org_unit,source\n\
                   B-1,2024-03-01,counter,王小明,示例银行,退款,多扣年费,E1001,institutions/demo-bank/branches/sh,staff\n\
                   B-2,2024-03-01,counter,王小明,示例银行,退款,多扣年费,,,\n\
                   B-3,2024-03-01,counter,王小明,示例银行,退款,多扣年费,,,vendor\n";
        let rows: Vec<_> = Importer::new(csv.as_bytes(), options(Format::Native)).unwrap().collect();
        let b1 = &rows[0].as_ref().unwrap().complaint;
        let contact = b1.first_contact.as_ref().unwrap();
        assert_eq!(
            (contact.staff_id.as_str(), contact.org_unit.as_str()),
            ("E1001", "institutions/demo-bank/branches/sh")
        );
        assert_eq!(b1.source, ComplaintSource::InternalStaff as i32);
        let b2 = &rows[1].as_ref().unwrap().complaint;
        assert_eq!((b2.first_contact.as_ref(), b2.source), (None, ComplaintSource::Unspecified as i32));
        assert!(rows[2].as_ref().unwrap_err().error.contains("source"));
        assert_eq!(source_named("external-partner"), Some(ComplaintSource::ExternalPartner));
    }

    #[test]
    fn native_rows_may_name_their_product() {
        let csv = "source_id,received_at,channel,name,institution,demand,facts,product\n\
                   P-1,2024-03-01,counter,王小明,示例银行,退款,多扣年费, 信用卡 \n\
                   P-2,2024-03-01,counter,王小明,示例银行,退款,多扣年费,\n";
        let rows: Vec<_> = Importer::new(csv.as_bytes(), options(Format::Native)).unwrap().collect();
        let products: Vec<&str> = rows.iter().map(|r| r.as_ref().unwrap().complaint.product.as_str()).collect();
        assert_eq!(products, ["信用卡", ""]);
        // A file without the column imports as before: the same complaint, so the same request.
        let without = "source_id,received_at,channel,name,institution,demand,facts\n\
                       P-2,2024-03-01,counter,王小明,示例银行,退款,多扣年费\n";
        let row = Importer::new(without.as_bytes(), options(Format::Native)).unwrap().next().unwrap().unwrap();
        assert_eq!(row.complaint, rows[1].as_ref().unwrap().complaint);
    }

    #[test]
    fn a_file_without_the_required_columns_is_refused() {
        let err = Importer::new("a,b\n1,2\n".as_bytes(), options(Format::Cfpb)).err().unwrap();
        assert!(err.to_string().contains("Complaint ID"), "{err}");
    }
}
