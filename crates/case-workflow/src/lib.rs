//! redress-case-workflow
