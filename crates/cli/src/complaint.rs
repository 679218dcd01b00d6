//! `redress complaint …`: one IntakeService call per invocation, its input checked before the
//! call and its outcome told by the exit code (0 done, 1 refused or failed, 2 bad usage).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::builder::NonEmptyStringValueParser;
use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use prost_types::Timestamp;
use redress_proto::redress::common::v1::{Channel, Grade};
use redress_proto::redress::intake::v1::intake_service_client::IntakeServiceClient;
use redress_proto::redress::intake::v1::personal_data_service_client::PersonalDataServiceClient;
use redress_proto::redress::intake::v1::{
    Agent, AgentRelation, Complainant, ComplainedParty, Complaint, ComplaintSource, ConfirmComplaintContentRequest,
    ConfirmationMethod, ContentConfirmation, EvidenceKind, EvidenceReference, FirstContact, GetComplaintRequest,
    IdDocument, IdDocumentType, Interaction, LiftSubjectRestrictionRequest, ListComplaintsRequest,
    ListTaxonomiesRequest, NaturalPerson, Organisation, OverrideClassificationRequest, PersonIdentifier,
    Representative, RestrictSubjectProcessingRequest, SubmitComplaintRequest, SupplementPersonalDataRequest,
    WithdrawComplaintRequest, complainant::Party, person_identifier,
};
use serde_json::{Map, Value};

use crate::output::{self, Reply};
use crate::words::{ProtoEnum, from_word, words};
use crate::{
    Authenticated, Failure, Global, Severity, Via, changed, connect, gateway_url, parse_time, print, read, report,
    resource_name, usage,
};

/// Submit, read, withdraw and reclassify complaints by hand through a running gateway.
#[derive(Args)]
pub struct ComplaintArgs {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: ComplaintCommand,
}

#[derive(Subcommand)]
enum ComplaintCommand {
    /// Submit a complaint: from a JSON file, or a natural person's complaint from flags.
    Submit(Box<Submit>),
    /// Show one complaint; personal information is masked unless `--reveal-reason` is given.
    Get {
        /// The complaint: `complaints/{id}` or its bare id.
        complaint: String,
        /// Why you need the personal information in clear (needs the pii.read permission; the
        /// read is recorded with this reason).
        #[arg(long, value_name = "TEXT")]
        reveal_reason: Option<String>,
    },
    /// List complaints, newest received first.
    List {
        /// Only complaints received through this channel.
        #[arg(long, value_enum)]
        channel: Option<Via>,
        /// Only complaints received at or after this RFC 3339 time.
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        received_after: Option<Timestamp>,
        /// Only complaints received before this RFC 3339 time.
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        received_before: Option<Timestamp>,
        /// Complaints per page (default 50, at most 1000).
        #[arg(long)]
        page_size: Option<i32>,
        /// Token of the next page, as a previous page printed it.
        #[arg(long)]
        page_token: Option<String>,
    },
    /// Record that the complainant withdrew the complaint (撤诉); its case is withdrawn too.
    Withdraw {
        /// The complaint: `complaints/{id}` or its bare id.
        complaint: String,
        /// Why, as the complainant said.
        #[arg(long, value_name = "TEXT")]
        reason: String,
        /// When the withdrawal was received, RFC 3339 (default now).
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        withdraw_time: Option<Timestamp>,
    },
    /// Override the complaint's classification or grade (`taxonomies` lists the codes).
    #[command(group(
        ArgGroup::new("changes").args(["business_type", "cause", "right", "grade"]).required(true).multiple(true)
    ))]
    Classify {
        /// The complaint: `complaints/{id}` or its bare id.
        complaint: String,
        /// Business type code, e.g. B02.
        #[arg(long, value_name = "CODE")]
        business_type: Option<String>,
        /// Cause code, e.g. C05.
        #[arg(long, value_name = "CODE")]
        cause: Option<String>,
        /// Consumer right infringed, e.g. R4; repeat (or separate with commas) for several. The
        /// rights given replace the current ones.
        #[arg(long, value_name = "CODE", value_delimiter = ',')]
        right: Vec<String>,
        /// Severity grade.
        #[arg(long, value_enum)]
        grade: Option<Severity>,
        /// Why.
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
    /// Record the complainant's answer when the recorded content was read back to them
    /// (向客户确认投诉内容).
    ///
    /// Either they confirmed it as recorded, or they corrected it: the corrections are kept
    /// beside the record, which itself never changes.
    #[command(group(ArgGroup::new("answer").args(["confirmed", "corrections"]).required(true)))]
    Confirm {
        /// The complaint: `complaints/{id}` or its bare id.
        complaint: String,
        /// How the content was read back.
        #[arg(long, value_enum)]
        method: Method,
        /// The complainant confirmed the content as recorded.
        #[arg(long)]
        confirmed: bool,
        /// The complainant's corrections, verbatim; kept sealed like their personal information.
        #[arg(long, value_name = "TEXT")]
        corrections: Option<String>,
        /// Staff note, e.g. the call recording's reference (required with `--method other`).
        #[arg(long, value_name = "TEXT", required_if_eq("method", "other"))]
        note: Option<String>,
        /// When the complainant answered, RFC 3339 (default now).
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        at: Option<Timestamp>,
        /// Idempotency key: an answer repeated with the same id is recorded once. Random when
        /// unset, and printed.
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Restrict the processing of a person's information (PIPL Art.44): their complaints are
    /// kept and handled, but not matched as repeats, against a VIP register, nor broken down
    /// in the metrics. Needs the pii.manage permission; recorded in the access log.
    Restrict(Box<PersonRequest>),
    /// Lift a person's restriction of processing: their new complaints are matched again.
    LiftRestriction(Box<PersonRequest>),
    /// Add the person's supplement to a complaint's personal information or free text (PIPL
    /// Art.46), kept beside the words first recorded. Needs the pii.manage permission.
    Supplement {
        /// The complaint: `complaints/{id}` or its bare id.
        complaint: String,
        /// The field supplemented: complainant, complainant.full-name, complainant.id-number,
        /// complainant.phone, complainant.email, complainant.address, agent, representatives,
        /// demand, facts or evidence.
        #[arg(long, value_name = "FIELD")]
        field: String,
        /// The supplement, as the person gave it (1..2000 characters).
        #[arg(long, value_name = "TEXT")]
        text: String,
        /// Why (e.g. the reference of the person's request).
        #[arg(long, value_name = "TEXT")]
        reason: String,
        /// Idempotency key: a supplement repeated with the same id is added once. Random when
        /// unset, and printed.
        #[arg(long)]
        request_id: Option<String>,
    },
    /// List the taxonomies complaints are classified in, with their codes.
    Taxonomies,
    /// Import complaints from a CSV file: the native schema or the CFPB export. Rows are
    /// submitted as they are read, each idempotent on its source id (re-importing creates
    /// nothing new) and keeping its received date; a bad row is reported and the import goes
    /// on. Exit 1 when any row failed.
    Import(crate::import::Import),
}

/// What `submit` takes: a JSON file, or flags for a natural person's complaint.
#[derive(Args)]
struct Submit {
    /// The complaint as a JSON object (`-` reads stdin): channel, complainant {person {…} or
    /// organisation {…}}, complained_party {…}, demand, facts, org_unit, and optionally
    /// receive_time, interaction, agent, representatives, evidence, staff_notes,
    /// external_reference, first_contact {staff_id, subject, org_unit, department}, source,
    /// product (field names as in intake.proto, enums by their lower-case words).
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// Channel the complaint arrived through.
    #[arg(long, value_enum, required_unless_present = "file", conflicts_with = "file")]
    channel: Option<Via>,
    /// The complainant's full name.
    #[arg(long, required_unless_present = "file", conflicts_with = "file")]
    name: Option<String>,
    /// The complainant's phone number.
    #[arg(long, conflicts_with = "file")]
    phone: Option<String>,
    /// The complainant's 18-digit resident ID number (居民身份证).
    #[arg(long, conflicts_with = "file")]
    id_number: Option<String>,
    /// Institution complained about.
    #[arg(long, required_unless_present = "file", conflicts_with = "file")]
    institution: Option<String>,
    /// Branch or outlet complained about.
    #[arg(long, conflicts_with = "file")]
    branch: Option<String>,
    /// Organisation unit that owns the complaint, e.g. institutions/demo-bank/branches/shanghai.
    #[arg(long, required_unless_present = "file", conflicts_with = "file")]
    org_unit: Option<String>,
    /// The complainant's demand (诉求), verbatim.
    #[arg(long, required_unless_present = "file", conflicts_with = "file")]
    demand: Option<String>,
    /// Main facts and grounds, verbatim.
    #[arg(long, required_unless_present = "file", conflicts_with = "file")]
    facts: Option<String>,
    /// When the institution received the complaint, RFC 3339 (default now).
    #[arg(long, value_name = "TIME", value_parser = parse_time, conflicts_with = "file")]
    receive_time: Option<Timestamp>,
    /// Employee id (工号) of the member of staff who took the complaint (首问负责); the case
    /// starts owned by them. Default: you, when your token carries an employee id.
    #[arg(long, value_name = "ID", value_parser = NonEmptyStringValueParser::new(), conflicts_with = "file")]
    first_contact_staff_id: Option<String>,
    /// Their user subject, e.g. user:li-na; the case is assigned to it.
    #[arg(long, value_name = "SUBJECT", requires = "first_contact_staff_id", conflicts_with = "file")]
    first_contact_subject: Option<String>,
    /// Their department, e.g. counter-services; the case's department when it opens.
    #[arg(long, value_name = "DEPARTMENT", requires = "first_contact_staff_id", conflicts_with = "file")]
    first_contact_department: Option<String>,
    /// Where the complaint comes from (default consumer).
    #[arg(long, value_enum, conflicts_with = "file")]
    source: Option<Source>,
    /// The product or service complained about, as the institution names it, e.g. 信用卡.
    #[arg(long, conflicts_with = "file")]
    product: Option<String>,
    /// Idempotency key: a submission repeated with the same id records the complaint once.
    /// Random when unset, and printed.
    #[arg(long)]
    request_id: Option<String>,
}

/// Where a complaint comes from, as the command line names it.
#[derive(Clone, Copy, ValueEnum)]
enum Source {
    /// A consumer, or their agent.
    #[value(alias = "external-consumer")]
    Consumer,
    /// A business partner: merchant, agent institution, outsourcer.
    #[value(alias = "external-partner")]
    Partner,
    /// A member of the institution's own staff.
    #[value(alias = "internal-staff")]
    Staff,
}

impl From<Source> for ComplaintSource {
    fn from(source: Source) -> Self {
        match source {
            Source::Consumer => ComplaintSource::ExternalConsumer,
            Source::Partner => ComplaintSource::ExternalPartner,
            Source::Staff => ComplaintSource::InternalStaff,
        }
    }
}

/// How recorded content was read back, as the command line names it.
#[derive(Clone, Copy, ValueEnum)]
enum Method {
    /// On the phone, on a recorded call.
    ReadBackCall,
    /// In person, and signed.
    SignedInPerson,
    /// Online (web, app), by the complainant.
    Online,
    /// By SMS or email reply.
    MessageReply,
    /// Another way, stated in the note.
    Other,
}

impl From<Method> for ConfirmationMethod {
    fn from(method: Method) -> Self {
        match method {
            Method::ReadBackCall => ConfirmationMethod::ReadBackCall,
            Method::SignedInPerson => ConfirmationMethod::SignedInPerson,
            Method::Online => ConfirmationMethod::Online,
            Method::MessageReply => ConfirmationMethod::MessageReply,
            Method::Other => ConfirmationMethod::Other,
        }
    }
}

type Client = IntakeServiceClient<Authenticated>;

/// The person a data-subject request is about, by phone or identity document, and the request.
#[derive(Args)]
#[command(group(ArgGroup::new("person").args(["phone", "id_number"]).required(true)))]
struct PersonRequest {
    /// The person's phone number, as they give it (any spelling of a mainland number).
    #[arg(long, value_name = "PHONE", conflicts_with = "id_number")]
    phone: Option<String>,
    /// The number of the person's identity document.
    #[arg(long, value_name = "NUMBER")]
    id_number: Option<String>,
    /// The kind of that document (default resident-id).
    #[arg(long, value_name = "TYPE", requires = "id_number", value_parser = id_document_type)]
    id_type: Option<i32>,
    /// The institution the person exercises the right against: `institutions/{id}` or its
    /// bare id.
    #[arg(long, value_name = "INSTITUTION")]
    institution: String,
    /// Why (e.g. the reference of the person's request).
    #[arg(long, value_name = "TEXT")]
    reason: String,
    /// Idempotency key: a request repeated with the same id is carried out once. Random when
    /// unset, and printed.
    #[arg(long)]
    request_id: Option<String>,
}

/// An identity document's kind by its word (`resident-id`, `passport`, ...).
fn id_document_type(text: &str) -> Result<i32, String> {
    from_word::<IdDocumentType>(text).ok_or_else(|| format!("expected one of {}", words::<IdDocumentType>().join(", ")))
}

impl PersonRequest {
    /// The person, the institution, the reason and the request id to send.
    fn parts(self) -> (PersonIdentifier, String, String, String) {
        let identifier = match (self.phone, self.id_number) {
            (Some(phone), _) => person_identifier::Identifier::Phone(phone.trim().to_owned()),
            (None, number) => person_identifier::Identifier::IdDocument(IdDocument {
                r#type: self.id_type.unwrap_or(IdDocumentType::ResidentId as i32),
                number: number.unwrap_or_default().trim().to_owned(),
            }),
        };
        let request_id = self.request_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let institution = resource_name("institutions/", &self.institution);
        (PersonIdentifier { identifier: Some(identifier) }, institution, self.reason, request_id)
    }
}

/// Runs one `redress complaint` command and says how it went in the exit code.
pub async fn run(args: ComplaintArgs) -> ExitCode {
    let gateway = gateway_url(&args.global.gateway);
    let outcome = execute(&gateway, args).await;
    report(outcome, &gateway)
}

async fn execute(gateway: &str, args: ComplaintArgs) -> Result<ExitCode, Failure> {
    let ComplaintArgs { global: Global { token, output: format, ca_file, .. }, command } = args;
    let channel = connect(gateway, token.as_deref(), ca_file.as_deref())?;
    let reply = match command {
        ComplaintCommand::Import(import) => {
            return crate::import::run(IntakeServiceClient::new(channel), import, format).await;
        }
        ComplaintCommand::Restrict(person) => {
            restriction(PersonalDataServiceClient::new(channel), true, *person).await?
        }
        ComplaintCommand::LiftRestriction(person) => {
            restriction(PersonalDataServiceClient::new(channel), false, *person).await?
        }
        ComplaintCommand::Supplement { complaint, field, text, reason, request_id } => {
            let request_id = request_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            let request = SupplementPersonalDataRequest {
                name: resource_name("complaints/", &complaint),
                request_id: request_id.clone(),
                // Field names as the contract spells them (`complainant.full_name`).
                field: field.trim().replace('-', "_"),
                // The person's words are kept verbatim.
                text,
                reason,
            };
            let mut client = PersonalDataServiceClient::new(channel);
            let complaint = changed(client.supplement_personal_data(request).await, request_id.clone())?;
            Reply::Supplemented { complaint: Box::new(complaint), request_id }
        }
        command => call(IntakeServiceClient::new(channel), command).await?,
    };
    print(&output::render(&reply, format)?)?;
    Ok(ExitCode::SUCCESS)
}

/// Restricts (`restrict`) or lifts the restriction of the processing of a person's information.
async fn restriction(
    mut client: PersonalDataServiceClient<Authenticated>,
    restrict: bool,
    person: PersonRequest,
) -> Result<Reply, Failure> {
    let (person, institution, reason, request_id) = person.parts();
    let answer = if restrict {
        let request = RestrictSubjectProcessingRequest {
            request_id: request_id.clone(),
            person: Some(person),
            institution,
            reason,
        };
        client.restrict_subject_processing(request).await
    } else {
        let request =
            LiftSubjectRestrictionRequest { request_id: request_id.clone(), person: Some(person), institution, reason };
        client.lift_subject_restriction(request).await
    };
    let restriction = changed(answer, request_id.clone())?;
    Ok(Reply::Restriction { restriction, request_id })
}

async fn call(mut client: Client, command: ComplaintCommand) -> Result<Reply, Failure> {
    let complaint = match command {
        ComplaintCommand::Submit(submit) => {
            let request_id = submit.request_id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            let complaint = submit.complaint().await?;
            let request = SubmitComplaintRequest { request_id: request_id.clone(), complaint: Some(complaint) };
            let response = changed(client.submit_complaint(request).await, request_id.clone())?;
            return Ok(Reply::Submitted { response: Box::new(response), request_id });
        }
        ComplaintCommand::Get { complaint, reveal_reason } => {
            let request = GetComplaintRequest {
                name: resource_name("complaints/", &complaint),
                pii_access_reason: reveal_reason.unwrap_or_default(),
            };
            read(client.get_complaint(request).await)?
        }
        ComplaintCommand::List { channel, received_after, received_before, page_size, page_token } => {
            let request = ListComplaintsRequest {
                page_size: page_size.unwrap_or_default(),
                page_token: page_token.unwrap_or_default(),
                channel: channel.map_or(Channel::Unspecified, Channel::from).into(),
                receive_time_from: received_after,
                receive_time_to: received_before,
            };
            return Ok(Reply::Complaints(read(client.list_complaints(request).await)?));
        }
        ComplaintCommand::Withdraw { complaint, reason, withdraw_time } => {
            // Withdrawing is idempotent: repeating it after an unknown outcome is safe as is.
            let request =
                WithdrawComplaintRequest { name: resource_name("complaints/", &complaint), reason, withdraw_time };
            read(client.withdraw_complaint(request).await)?
        }
        ComplaintCommand::Classify { complaint, business_type, cause, right, grade, reason } => {
            let request = OverrideClassificationRequest {
                name: resource_name("complaints/", &complaint),
                business_type: business_type.map(|b| b.trim().to_owned()).unwrap_or_default(),
                cause: cause.map(|c| c.trim().to_owned()).unwrap_or_default(),
                rights: right.iter().map(|r| r.trim().to_owned()).filter(|r| !r.is_empty()).collect(),
                grade: grade.map_or(Grade::Unspecified, Grade::from).into(),
                reason,
            };
            read(client.override_classification(request).await)?
        }
        ComplaintCommand::Confirm { complaint, method, confirmed, corrections, note, at, request_id } => {
            let corrections = corrections.unwrap_or_default();
            if !confirmed && corrections.trim().is_empty() {
                return Err(usage("--corrections must say what the complainant corrected"));
            }
            let request_id = request_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            let request = ConfirmComplaintContentRequest {
                name: resource_name("complaints/", &complaint),
                request_id: request_id.clone(),
                confirmation: Some(ContentConfirmation {
                    confirmed,
                    method: ConfirmationMethod::from(method).into(),
                    // The complainant's words are kept verbatim.
                    corrections,
                    note: note.unwrap_or_default(),
                    confirm_time: at,
                    ..ContentConfirmation::default()
                }),
            };
            let complaint = changed(client.confirm_complaint_content(request).await, request_id.clone())?;
            return Ok(Reply::Confirmed { complaint: Box::new(complaint), request_id });
        }
        ComplaintCommand::Taxonomies => {
            return Ok(Reply::Taxonomies(read(client.list_taxonomies(ListTaxonomiesRequest {}).await)?));
        }
        ComplaintCommand::Import(_)
        | ComplaintCommand::Restrict(_)
        | ComplaintCommand::LiftRestriction(_)
        | ComplaintCommand::Supplement { .. } => return Err(usage("this command calls another service")),
    };
    Ok(Reply::Complaint(Box::new(complaint)))
}

impl Submit {
    /// The complaint to submit, from the file or the flags.
    async fn complaint(&self) -> Result<Complaint, Failure> {
        let Some(file) = &self.file else { return Ok(self.flags_complaint()) };
        let shown = if file.as_os_str() == "-" { "stdin".to_owned() } else { file.display().to_string() };
        let path = file.clone();
        let text = tokio::task::spawn_blocking(move || {
            if path.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())
            } else {
                std::fs::read_to_string(&path)
            }
        })
        .await
        .map_err(|e| Failure::Other(format!("reading {shown} stopped: {e}")))?
        .map_err(|e| Failure::Other(format!("cannot read {shown}: {e}")))?;
        let value: Value = serde_json::from_str(&text).map_err(|e| usage(format!("{shown} is not valid JSON: {e}")))?;
        complaint_from_json(&value).map_err(|e| usage(format!("{shown}: {e}")))
    }

    /// A natural person's complaint from the flags (clap has checked the required ones).
    fn flags_complaint(&self) -> Complaint {
        let text = |flag: &Option<String>| flag.as_deref().map(str::trim).unwrap_or_default().to_owned();
        let id_number = text(&self.id_number);
        let id_document_type =
            if id_number.is_empty() { IdDocumentType::Unspecified } else { IdDocumentType::ResidentId };
        let first_contact = self.first_contact_staff_id.as_ref().map(|staff_id| FirstContact {
            staff_id: staff_id.trim().to_owned(),
            subject: text(&self.first_contact_subject),
            department: text(&self.first_contact_department),
            ..FirstContact::default()
        });
        Complaint {
            channel: self.channel.map_or(Channel::Unspecified, Channel::from).into(),
            receive_time: self.receive_time,
            complainant: Some(Complainant {
                party: Some(Party::Person(NaturalPerson {
                    full_name: text(&self.name),
                    id_document_type: id_document_type.into(),
                    id_number,
                    phone: text(&self.phone),
                    ..NaturalPerson::default()
                })),
            }),
            complained_party: Some(ComplainedParty {
                institution: text(&self.institution),
                branch: text(&self.branch),
                ..ComplainedParty::default()
            }),
            // The complainant's words are kept verbatim.
            demand: self.demand.clone().unwrap_or_default(),
            facts: self.facts.clone().unwrap_or_default(),
            org_unit: text(&self.org_unit),
            first_contact,
            source: self.source.map_or(ComplaintSource::Unspecified, ComplaintSource::from).into(),
            product: text(&self.product),
            ..Complaint::default()
        }
    }
}

/// A JSON object being read into a message; `path` names it in messages (`complainant.person`).
struct Object<'a> {
    path: String,
    fields: &'a Map<String, Value>,
}

impl<'a> Object<'a> {
    fn of(value: &'a Value, path: &str) -> Result<Self, String> {
        match value {
            Value::Object(fields) => Ok(Self { path: path.to_owned(), fields }),
            _ => Err(format!("{} must be a JSON object", if path.is_empty() { "the complaint" } else { path })),
        }
    }

    /// Refuses fields the message does not have, so that a misspelt one is not silently lost.
    fn only(&self, known: &[&str]) -> Result<(), String> {
        match self.fields.keys().find(|key| !known.contains(&key.as_str())) {
            Some(key) => Err(format!("unknown field {} (expected one of: {})", self.name(key), known.join(", "))),
            None => Ok(()),
        }
    }

    fn name(&self, key: &str) -> String {
        if self.path.is_empty() { key.to_owned() } else { format!("{}.{key}", self.path) }
    }

    /// A field; null is the same as absent.
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.fields.get(key).filter(|v| !v.is_null())
    }

    fn string(&self, key: &str) -> Result<String, String> {
        match self.get(key) {
            None => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(format!("{} must be a string", self.name(key))),
        }
    }

    fn int(&self, key: &str) -> Result<i32, String> {
        match self.get(key) {
            None => Ok(0),
            Some(v) => v
                .as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .ok_or_else(|| format!("{} must be a whole number", self.name(key))),
        }
    }

    fn enumerated<E: ProtoEnum>(&self, key: &str) -> Result<i32, String> {
        let value = match self.get(key) {
            None => return Ok(0),
            Some(Value::String(s)) => from_word::<E>(s),
            Some(Value::Number(n)) => {
                n.as_i64().and_then(|n| i32::try_from(n).ok()).filter(|&n| n != 0 && E::name_of(n).is_some())
            }
            Some(_) => None,
        };
        value.ok_or_else(|| format!("{} must be one of: {}", self.name(key), words::<E>().join(", ")))
    }

    fn time(&self, key: &str) -> Result<Option<Timestamp>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => parse_time(s).map(Some).map_err(|e| format!("{}: {e}", self.name(key))),
            Some(_) => Err(format!("{} must be an RFC 3339 time string", self.name(key))),
        }
    }

    fn object(&self, key: &str) -> Result<Option<Object<'a>>, String> {
        self.get(key).map(|v| Object::of(v, &self.name(key))).transpose()
    }

    fn array(&self, key: &str) -> Result<&'a [Value], String> {
        match self.get(key) {
            None => Ok(&[]),
            Some(Value::Array(items)) => Ok(items),
            Some(_) => Err(format!("{} must be a JSON array", self.name(key))),
        }
    }
}

/// A complaint from its JSON form: the proto's field names, enums by word or name, times in
/// RFC 3339. Output-only fields and unknown fields are refused.
fn complaint_from_json(value: &Value) -> Result<Complaint, String> {
    let c = Object::of(value, "")?;
    c.only(&[
        "channel",
        "receive_time",
        "complainant",
        "agent",
        "representatives",
        "complained_party",
        "demand",
        "facts",
        "evidence",
        "staff_notes",
        "org_unit",
        "external_reference",
        "interaction",
        "first_contact",
        "source",
        "product",
    ])?;
    let complainant = match c.object("complainant")? {
        None => None,
        Some(o) => {
            o.only(&["person", "organisation"])?;
            let party = match (o.object("person")?, o.object("organisation")?) {
                (Some(_), Some(_)) => {
                    return Err("complainant: give either person or organisation, not both".to_owned());
                }
                (Some(p), None) => Some(Party::Person(person(&p)?)),
                (None, Some(org)) => Some(Party::Organisation(organisation(&org)?)),
                (None, None) => None,
            };
            Some(Complainant { party })
        }
    };
    let agent = match c.object("agent")? {
        None => None,
        Some(a) => {
            a.only(&["relation", "person", "authorization_reference"])?;
            Some(Agent {
                relation: a.enumerated::<AgentRelation>("relation")?,
                person: a.object("person")?.map(|p| person(&p)).transpose()?,
                authorization_reference: a.string("authorization_reference")?,
            })
        }
    };
    let mut representatives = Vec::new();
    for (i, item) in c.array("representatives")?.iter().enumerate() {
        let r = Object::of(item, &format!("representatives[{i}]"))?;
        r.only(&["person"])?;
        representatives.push(Representative { person: r.object("person")?.map(|p| person(&p)).transpose()? });
    }
    let complained_party = match c.object("complained_party")? {
        None => None,
        Some(p) => {
            p.only(&["institution", "branch", "staff_name", "staff_id"])?;
            Some(ComplainedParty {
                institution: p.string("institution")?,
                branch: p.string("branch")?,
                staff_name: p.string("staff_name")?,
                staff_id: p.string("staff_id")?,
            })
        }
    };
    let mut evidence = Vec::new();
    for (i, item) in c.array("evidence")?.iter().enumerate() {
        let e = Object::of(item, &format!("evidence[{i}]"))?;
        e.only(&["kind", "uri", "sha256", "description"])?;
        evidence.push(EvidenceReference {
            kind: e.enumerated::<EvidenceKind>("kind")?,
            uri: e.string("uri")?,
            sha256: e.string("sha256")?,
            description: e.string("description")?,
        });
    }
    let interaction = match c.object("interaction")? {
        None => None,
        Some(i) => {
            i.only(&["contact_count", "wait_seconds"])?;
            Some(Interaction { contact_count: i.int("contact_count")?, wait_seconds: i.int("wait_seconds")? })
        }
    };
    let first_contact = match c.object("first_contact")? {
        None => None,
        Some(f) => {
            // `recorded_by` is the caller's, never the file's.
            f.only(&["subject", "staff_id", "org_unit", "department"])?;
            Some(FirstContact {
                subject: f.string("subject")?,
                staff_id: f.string("staff_id")?,
                org_unit: f.string("org_unit")?,
                department: f.string("department")?,
                ..FirstContact::default()
            })
        }
    };
    Ok(Complaint {
        channel: c.enumerated::<Channel>("channel")?,
        receive_time: c.time("receive_time")?,
        complainant,
        agent,
        representatives,
        complained_party,
        demand: c.string("demand")?,
        facts: c.string("facts")?,
        evidence,
        staff_notes: c.string("staff_notes")?,
        org_unit: c.string("org_unit")?,
        external_reference: c.string("external_reference")?,
        interaction,
        first_contact,
        source: source(&c)?,
        product: c.string("product")?,
        ..Complaint::default()
    })
}

/// The complaint's source: by its word (`external-partner`, as the text output prints it) or by
/// the word `--source` takes (`partner`).
fn source(c: &Object<'_>) -> Result<i32, String> {
    if let Some(Value::String(s)) = c.get("source")
        && let Ok(source) = Source::from_str(s.trim(), true)
    {
        return Ok(ComplaintSource::from(source).into());
    }
    c.enumerated::<ComplaintSource>("source").map_err(|e| format!("{e} (or consumer, partner, staff)"))
}

fn person(p: &Object<'_>) -> Result<NaturalPerson, String> {
    p.only(&["full_name", "id_document_type", "id_number", "phone", "email", "address"])?;
    Ok(NaturalPerson {
        full_name: p.string("full_name")?,
        id_document_type: p.enumerated::<IdDocumentType>("id_document_type")?,
        id_number: p.string("id_number")?,
        phone: p.string("phone")?,
        email: p.string("email")?,
        address: p.string("address")?,
    })
}

fn organisation(o: &Object<'_>) -> Result<Organisation, String> {
    o.only(&[
        "name",
        "unified_social_credit_code",
        "address",
        "legal_representative",
        "contact_name",
        "contact_phone",
    ])?;
    Ok(Organisation {
        name: o.string("name")?,
        unified_social_credit_code: o.string("unified_social_credit_code")?,
        address: o.string("address")?,
        legal_representative: o.string("legal_representative")?,
        contact_name: o.string("contact_name")?,
        contact_phone: o.string("contact_phone")?,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_complaint_file_mirrors_the_message() {
        let value = json!({
            "channel": "mobile-app",
            "receive_time": "2026-06-09T18:13:20+08:00",
            "complainant": { "person": {
                "full_name": "王小明",
                "id_document_type": "resident-id",
                "id_number": "11010519491231002X",
                "phone": "13812345678",
            }},
            "complained_party": { "institution": "示例银行", "branch": "上海分行", "staff_id": "E1024" },
            "demand": "退还年费",
            "facts": "已达标仍被扣收。",
            "org_unit": "institutions/demo-bank/branches/shanghai",
            "interaction": { "contact_count": 4, "wait_seconds": 420 },
            "evidence": [{ "kind": "RECORDING", "uri": "s3://evidence/1.mp3" }],
        });
        let c = complaint_from_json(&value).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.channel, Channel::MobileApp as i32);
        assert_eq!(c.receive_time, Some(Timestamp { seconds: 1_781_000_000, nanos: 0 }));
        let Some(Party::Person(p)) = c.complainant.and_then(|c| c.party) else { panic!("no person") };
        assert_eq!(p.id_document_type, IdDocumentType::ResidentId as i32);
        assert_eq!(p.phone, "13812345678");
        assert_eq!(c.complained_party.map(|p| p.staff_id), Some("E1024".to_owned()));
        assert_eq!(c.interaction, Some(Interaction { contact_count: 4, wait_seconds: 420 }));
        assert_eq!(c.evidence[0].kind, EvidenceKind::Recording as i32);
        assert_eq!(c.org_unit, "institutions/demo-bank/branches/shanghai");
    }

    #[test]
    fn mistakes_in_a_complaint_file_are_named_by_their_path() {
        let error = |value: Value| complaint_from_json(&value).err().unwrap_or_default();
        assert!(error(json!({ "chanel": "phone" })).starts_with("unknown field chanel"));
        assert!(error(json!({ "channel": "fax" })).contains("channel must be one of: counter, self-service, phone"));
        assert!(error(json!({ "channel": "unspecified" })).starts_with("channel must be one of"));
        assert!(
            error(json!({ "complainant": { "person": { "phone": 138 } } })).starts_with("complainant.person.phone")
        );
        assert!(error(json!({ "complainant": { "person": { "nmae": "x" } } })).contains("complainant.person.nmae"));
        assert!(error(json!({ "receive_time": "yesterday" })).starts_with("receive_time: expected an RFC 3339"));
        assert!(error(json!({ "evidence": [{}, { "kind": 7 }] })).starts_with("evidence[1].kind"));
        assert!(error(json!([])).contains("must be a JSON object"));
        assert!(error(json!({ "name": "complaints/1" })).starts_with("unknown field name"));
    }

    #[test]
    fn flags_make_a_natural_persons_complaint() {
        let submit = Submit {
            file: None,
            channel: Some(Via::Counter),
            name: Some("王小明".to_owned()),
            phone: Some(" 13812345678 ".to_owned()),
            id_number: Some("11010519491231002X".to_owned()),
            institution: Some("示例银行".to_owned()),
            branch: None,
            org_unit: Some("institutions/demo-bank".to_owned()),
            demand: Some("退还年费".to_owned()),
            facts: Some(" 原话 ".to_owned()),
            receive_time: None,
            first_contact_staff_id: None,
            first_contact_subject: None,
            first_contact_department: None,
            source: None,
            product: Some(" 信用卡 ".to_owned()),
            request_id: None,
        };
        let c = submit.flags_complaint();
        assert_eq!(c.product, "信用卡");
        assert_eq!(c.channel, Channel::Counter as i32);
        let Some(Party::Person(p)) = c.complainant.and_then(|c| c.party) else { panic!("no person") };
        assert_eq!((p.id_document_type, p.phone.as_str()), (IdDocumentType::ResidentId as i32, "13812345678"));
        assert_eq!(c.facts, " 原话 ", "the complainant's words are kept verbatim");
    }

    #[test]
    fn a_complaint_file_names_who_took_it_and_where_it_comes_from() {
        let value = json!({
            "channel": "counter",
            "first_contact": { "staff_id": "E2001", "subject": "user:li-na", "department": "counter-services" },
            "source": "partner",
            "product": "重疾险",
        });
        let c = complaint_from_json(&value).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.product, "重疾险");
        let first = c.first_contact.unwrap_or_default();
        assert_eq!(
            (first.staff_id.as_str(), first.subject.as_str(), first.department.as_str()),
            ("E2001", "user:li-na", "counter-services")
        );
        assert_eq!(c.source, ComplaintSource::ExternalPartner as i32);
        // The word the text output prints, and the enum's name, are taken too.
        for word in ["internal-staff", "COMPLAINT_SOURCE_INTERNAL_STAFF", "staff"] {
            let c = complaint_from_json(&json!({ "source": word })).unwrap_or_else(|e| panic!("{word}: {e}"));
            assert_eq!(c.source, ComplaintSource::InternalStaff as i32, "{word}");
        }
        let error = |value: Value| complaint_from_json(&value).err().unwrap_or_default();
        let unknown = error(json!({ "source": "regulator" }));
        assert!(unknown.starts_with("source must be one of: external-consumer, external-partner"), "{unknown}");
        // Who recorded the first contact is the caller, never the file.
        assert!(
            error(json!({ "first_contact": { "recorded_by": "x" } }))
                .starts_with("unknown field first_contact.recorded_by")
        );
        assert!(error(json!({ "content_confirmations": [] })).starts_with("unknown field content_confirmations"));
    }

    #[test]
    fn flags_name_who_took_the_complaint_and_where_it_comes_from() {
        use clap::Parser as _;
        let base = [
            "redress",
            "submit",
            "--channel",
            "counter",
            "--name",
            "n",
            "--institution",
            "i",
            "--org-unit",
            "o",
            "--demand",
            "d",
            "--facts",
            "f",
        ];
        let submit = |extra: &[&str]| {
            Cli::try_parse_from([&base[..], extra].concat()).map(|cli| match cli.complaint.command {
                ComplaintCommand::Submit(submit) => submit.flags_complaint(),
                _ => Complaint::default(),
            })
        };
        let taken = submit(&["--first-contact-staff-id", " E2001 ", "--first-contact-subject", "user:li-na"])
            .unwrap_or_else(|e| panic!("{e}"));
        let first = taken.first_contact.unwrap_or_default();
        assert_eq!((first.staff_id.as_str(), first.subject.as_str()), ("E2001", "user:li-na"));
        assert_eq!(taken.source, ComplaintSource::Unspecified as i32, "left to intake");
        let staff = submit(&["--source", "staff"]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((staff.source, staff.first_contact), (ComplaintSource::InternalStaff as i32, None));
        let printed = submit(&["--source", "external-partner"]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(printed.source, ComplaintSource::ExternalPartner as i32, "the word the output prints");
        let refused = submit(&["--first-contact-department", "cards"]).err().map(|e| e.to_string());
        assert!(refused.unwrap_or_default().contains("--first-contact-staff-id"));
        assert!(submit(&["--first-contact-staff-id", ""]).is_err());
    }

    #[test]
    fn a_read_back_answer_is_a_confirmation_or_corrections_and_other_needs_a_note() {
        use clap::Parser as _;
        let parse = |args: &[&str]| Cli::try_parse_from([&["redress", "confirm", "c"][..], args].concat());
        assert!(parse(&["--method", "read-back-call", "--confirmed"]).is_ok());
        assert!(parse(&["--method", "online", "--corrections", "年费是 300 元"]).is_ok());
        assert!(parse(&["--method", "online"]).is_err(), "one of --confirmed and --corrections");
        assert!(parse(&["--method", "online", "--confirmed", "--corrections", "x"]).is_err(), "not both");
        let unexplained = parse(&["--method", "other", "--confirmed"]).err().map(|e| e.to_string());
        assert!(unexplained.unwrap_or_default().contains("--note"));
        assert!(parse(&["--method", "other", "--confirmed", "--note", "微信回复"]).is_ok());
        assert!(parse(&["--method", "fax", "--confirmed"]).is_err());
    }

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        complaint: ComplaintArgs,
    }

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }
}
