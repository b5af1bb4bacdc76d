"""Phrases shared by the commands' ``--help`` texts: which settings a command reads (the README has the table)."""

KAFKA = (
    "VITALS_KAFKA_BOOTSTRAP, VITALS_TOPIC_PREFIX and the connection settings VITALS_SECURITY_PROTOCOL, "
    "VITALS_SSL_* and VITALS_SASL_*"
)
PIPELINE = (
    "the pipeline settings (windows VITALS_*_WINDOW_S/_HOP_S, VITALS_SQI_THRESHOLD, inference VITALS_WEIGHTS_DIR, "
    "VITALS_DEVICE, VITALS_BATCH_*, alerts VITALS_ESCALATE_AFTER_S, validation VITALS_MAX_MESSAGE_BYTES, "
    "VITALS_FUTURE_MARGIN_MS, VITALS_DEDUP_WINDOW)"
)
COMMON = "Every command reads VITALS_LOG_FORMAT (text or json log lines on stderr)."
