//! redress-platform
