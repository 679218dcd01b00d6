//! redress-gateway
