//! redress-intake
