//! Generated code for every Redress contract under `proto/`.
//!
//! Module paths mirror proto packages: `redress.intake.v1` is [`redress::intake::v1`].

#![allow(clippy::all, clippy::pedantic, missing_docs)]

pub mod google {
    pub mod api {
        tonic::include_proto!("google.api");
    }
    pub mod rpc {
        tonic::include_proto!("google.rpc");
    }
}

pub mod redress {
    pub mod common {
        pub mod v1 {
            tonic::include_proto!("redress.common.v1");
        }
    }
    pub mod intake {
        pub mod v1 {
            tonic::include_proto!("redress.intake.v1");
        }
    }
    pub mod case {
        pub mod v1 {
            tonic::include_proto!("redress.case.v1");
        }
    }
    pub mod escalation {
        pub mod v1 {
            tonic::include_proto!("redress.escalation.v1");
        }
    }
    pub mod metrics {
        pub mod v1 {
            tonic::include_proto!("redress.metrics.v1");
        }
    }
    pub mod knowledge {
        pub mod v1 {
            tonic::include_proto!("redress.knowledge.v1");
        }
    }
}

/// Encoded `FileDescriptorSet` of every Redress proto (and its imports), for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/redress_descriptor.bin"));

/// Fully-qualified gRPC service names of the public API, as the gateway routes them.
pub mod services {
    pub const INTAKE: &str = "redress.intake.v1.IntakeService";
    pub const INTAKE_EVENTS: &str = "redress.intake.v1.IntakeEventFeedService";
    pub const PERSONAL_DATA: &str = "redress.intake.v1.PersonalDataService";
    pub const CASE: &str = "redress.case.v1.CaseService";
    pub const CASE_EVENTS: &str = "redress.case.v1.CaseEventFeedService";
    pub const ESCALATION: &str = "redress.escalation.v1.EscalationService";
    pub const ESCALATION_EVENTS: &str = "redress.escalation.v1.EscalationEventFeedService";
    pub const METRICS: &str = "redress.metrics.v1.QualityMetricsService";
    pub const IMPROVEMENT: &str = "redress.metrics.v1.ImprovementService";
    pub const METRICS_EVENTS: &str = "redress.metrics.v1.MetricsEventFeedService";
    pub const KNOWLEDGE: &str = "redress.knowledge.v1.KnowledgeService";
    pub const KNOWLEDGE_EVENTS: &str = "redress.knowledge.v1.KnowledgeEventFeedService";
}
