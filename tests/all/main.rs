//! End-to-end tests against a real switchyard on loopback. One binary, one module per area.

mod agents;
mod alarms;
mod api_modules;
mod billing;
mod bindings;
mod dtmf;
mod fraud;
mod golden;
mod host_services;
mod hostile;
mod lists;
mod media;
mod memory;
mod metrics;
mod shield;
mod sip_calls;
mod stock_router;
mod tenancy;
mod tls;
mod trace;
mod web;
