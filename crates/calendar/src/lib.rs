//! redress-calendar
