//! The dimensions complaints are broken down by (D-QM-3), with the readable labels of their
//! values where the suite defines them.

use redress_proto::redress::common::v1::{Channel, Grade};
use redress_proto::redress::intake::v1::ComplaintSource;
use redress_proto::redress::metrics::v1::Dimension;

/// Every complaint together: the dimension id of the cells that count everything.
pub const ALL: i32 = 0;

/// The dimensions a fact is counted under, besides [`ALL`].
pub const DIMENSIONS: [Dimension; 11] = [
    Dimension::Channel,
    Dimension::BusinessType,
    Dimension::Cause,
    Dimension::Right,
    Dimension::Grade,
    Dimension::Department,
    Dimension::OrgUnit,
    Dimension::Handler,
    Dimension::Incident,
    Dimension::Source,
    Dimension::Product,
];

/// A readable label of a dimension value ("" when none is known beyond the value itself).
pub fn label(dimension: Dimension, value: &str) -> String {
    let zh = match dimension {
        Dimension::Channel => Channel::from_str_name(value).map(channel_label),
        Dimension::Grade => Grade::from_str_name(value).map(grade_label),
        Dimension::Source => ComplaintSource::from_str_name(value).map(source_label),
        Dimension::BusinessType | Dimension::Cause | Dimension::Right => crate::domain::taxonomy::label(value),
        _ => None,
    };
    zh.unwrap_or_default().to_owned()
}

pub fn channel_label(channel: Channel) -> &'static str {
    match channel {
        Channel::Unspecified => "未知",
        Channel::Counter => "营业现场",
        Channel::SelfService => "自助机具",
        Channel::Phone => "电话",
        Channel::Online => "网银/网上投诉平台",
        Channel::MobileApp => "移动客户端",
        Channel::SocialMedia => "网络公众平台/社交媒体",
        Channel::Sms => "短信",
        Channel::Email => "电子邮件",
        Channel::Letter => "信函",
        Channel::Visit => "上门",
        Channel::ThirdParty => "第三方渠道",
        Channel::RegulatorReferral => "监管转办",
        Channel::Other => "其他",
    }
}

fn grade_label(grade: Grade) -> &'static str {
    match grade {
        Grade::Unspecified => "未分级",
        Grade::General => "一般",
        Grade::Important => "重要",
        Grade::Urgent => "紧急",
        Grade::Major => "重大",
    }
}

fn source_label(source: ComplaintSource) -> &'static str {
    match source {
        ComplaintSource::Unspecified | ComplaintSource::ExternalConsumer => "外部消费者",
        ComplaintSource::ExternalPartner => "外部合作方",
        ComplaintSource::InternalStaff => "内部员工",
    }
}

/// The name of a channel as stored in a dimension value.
pub fn channel_value(channel: i32) -> String {
    Channel::try_from(channel).unwrap_or(Channel::Unspecified).as_str_name().to_owned()
}

pub fn grade_value(grade: i32) -> String {
    Grade::try_from(grade).unwrap_or(Grade::Unspecified).as_str_name().to_owned()
}

pub fn source_value(source: i32) -> String {
    match ComplaintSource::try_from(source).unwrap_or(ComplaintSource::Unspecified) {
        // Unspecified is recorded as an external consumer (D-CLS-4).
        ComplaintSource::Unspecified => ComplaintSource::ExternalConsumer,
        other => other,
    }
    .as_str_name()
    .to_owned()
}
