"""The IANA registry of enhanced status codes, row by row, against what mailroom does with each
code: the replies (:mod:`mailroom.codes.catalogue`) and report statuses
(:mod:`mailroom.codes.reports`) that carry it, the tests that show them, or — for a code no
SMTP server, LMTP server, submission server or queue can meet — the sentence, with its RFC,
that says why.

``mailroom replies --registry`` prints the table; ``docs/registry.md`` is the same, made by
``make docs``. Which replies and reports carry a code is read from the catalogues, never written
here; what is written here is the evidence (test node ids, checked by
``tests/codes/test_registry_table.py`` to exist and to name the code) and the reasons.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailroom.codes.catalogue import CATALOGUE
from mailroom.codes.registry import enhanced_code_entries
from mailroom.codes.reports import REPORTS

__all__ = [
    "IN_PROGRESS",
    "NOT_MET",
    "TESTS",
    "RegistryRow",
    "registry_markdown",
    "registry_rows",
]

# Codes that open issues being built now bring, and the issue: the table says so until it
# lands. None now: issues 15 (email authentication) and 16 (transport security) have landed,
# and their codes have their situations and tests below.
IN_PROGRESS: dict[str, str] = {}

# Codes no SMTP server, LMTP server, submission server or queue can meet, and why.
NOT_MET: dict[str, str] = {
    "X.6.10": "A duplicate of X.6.8, deprecated by the registry itself (RFC 6531 §3.7.4.2 "
    "and the IANA note): the situation is met, and mailroom answers it with 553 5.6.8.",
    "X.7.6": "RFC 3463 §3.8 defines it for a transport system authorized to validate or "
    "decrypt the message itself (X.400 security services, S/MIME domain gateways, RFC 3183) "
    "when it lacks the algorithm; SMTP and LMTP servers and queues carry signed and encrypted "
    "messages unopened, and the checks they do make report with RFC 7372's codes (X.7.20 to "
    "X.7.26).",
    "X.7.7": "RFC 3463 §3.8 defines it for a transport system authorized to validate a "
    "message's own integrity (X.400 content integrity, S/MIME domain gateways, RFC 3183); "
    "SMTP's transfer has no integrity check of the message to fail (TLS protects the channel, "
    "X.7.5, and DKIM body hashes report with RFC 7372's X.7.20 to X.7.22).",
}

# The tests that show mailroom sending each code (pytest node ids; parametrized ids left out).
TESTS: dict[str, tuple[str, ...]] = {
    "X.0.0": (
        "tests/server/test_session.py::test_whole_transactions_pipelined",
        "tests/delivery/test_outcome.py::test_reply_outcome",
    ),
    "X.1.0": ("tests/server/test_session.py::test_whole_transactions_pipelined",),
    "X.1.1": ("tests/mailserver/test_receiving.py::test_rcpt_replies_on_the_mx_listener",),
    "X.1.2": ("tests/delivery/test_runner.py::test_null_mx_and_nxdomain_bounce_at_once",),
    "X.1.3": (
        "tests/protocol/test_sequence.py::test_data_when_every_recipient_was_refused_for_syntax",
        "tests/mailserver/test_receiving.py::test_rcpt_replies_on_the_mx_listener",
    ),
    "X.1.4": (
        "tests/mailserver/test_accounts.py::test_an_address_that_matches_several_users_is_ambiguous",
    ),
    "X.1.5": ("tests/server/test_session.py::test_whole_transactions_pipelined",),
    "X.1.6": ("tests/mailserver/test_receiving.py::test_rcpt_replies_on_the_mx_listener",),
    "X.1.7": ("tests/protocol/test_limits.py::test_every_kind_of_bad_command_counts",),
    "X.1.8": (
        "tests/mailserver/test_routing_situations.py::test_sender_domains_that_take_no_mail",
        "tests/mailserver/test_routing_situations.py::test_a_sender_domain_dns_cannot_answer_for_now",
    ),
    "X.1.9": (
        "tests/delivery/test_runner.py::test_success_to_a_server_without_dsn_is_reported_as_relayed",
    ),
    "X.1.10": ("tests/delivery/test_runner.py::test_null_mx_and_nxdomain_bounce_at_once",),
    "X.2.0": ("tests/mailserver/test_accounts.py::test_a_mailbox_that_cannot_be_written",),
    "X.2.1": ("tests/mailserver/test_accounts.py::test_a_disabled_mailbox_is_refused_at_rcpt",),
    "X.2.2": ("tests/delivery/test_runner.py::test_deferred_state_is_on_disk",),
    "X.2.3": (
        "tests/mailserver/test_accounts.py::test_a_mailbox_size_limit_at_rcpt_and_at_the_end_of_data",
    ),
    "X.2.4": ("tests/mailserver/test_accounts.py::test_a_list_that_cannot_be_expanded",),
    "X.3.0": ("tests/server/test_errors.py::test_policy_error_at_end_of_data",),
    "X.3.1": ("tests/server/test_errors.py::test_disk_full",),
    "X.3.2": ("tests/server/test_shutdown.py::test_graceful_shutdown",),
    "X.3.3": ("tests/interop/test_burl.py::test_a_url_of_another_scheme",),
    "X.3.4": (
        "tests/server/test_limits.py::test_size_is_advertised_and_enforced",
        "tests/server/test_limits.py::test_header_section_limit",
        "tests/interop/test_burl.py::test_a_part_too_big_for_the_message",
        "tests/delivery/test_runner.py::test_a_message_over_the_next_hops_size_is_returned_unsent",
    ),
    "X.3.5": (
        "tests/mailserver/test_routing_situations.py::test_a_local_domain_without_mailboxes",
        "tests/mailserver/test_routing_situations.py::test_a_route_to_a_name_that_does_not_resolve_is_our_configuration",
        "tests/mailserver/test_routing_situations.py::test_check_config_warns_of_what_cannot_work",
    ),
    "X.3.6": ("tests/mailserver/test_priority_rrvs.py::test_who_may_ask_for_which_priority",),
    "X.4.0": (
        "tests/mailserver/test_routing_situations.py::test_an_mx_whose_addresses_no_mail_can_go_to",
    ),
    "X.4.1": (
        "tests/interop/test_burl.py::test_an_imap_server_that_cannot_be_reached",
        "tests/delivery/test_outcome.py::test_failures_without_reply_are_temporary",
    ),
    "X.4.2": (
        "tests/server/test_limits.py::test_idle_timeout",
        "tests/delivery/test_outcome.py::test_failures_without_reply_are_temporary",
    ),
    "X.4.3": ("tests/delivery/test_routing.py::test_dns_failure_is_temporary",),
    "X.4.4": (
        "tests/mailserver/test_routing_situations.py::test_a_broken_mx_is_reported_as_unable_to_route",
    ),
    "X.4.5": ("tests/mailserver/test_routing_situations.py::test_a_congested_queue_takes_no_more",),
    "X.4.6": (
        "tests/mailserver/test_routing_situations.py::test_an_mx_that_points_at_this_server_is_a_routing_loop",
        "tests/mailserver/test_routing_situations.py::test_too_many_received_fields_is_a_routing_loop",
    ),
    "X.4.7": ("tests/delivery/test_runner.py::test_unreachable_host_is_retried_then_expires",),
    "X.5.0": ("tests/delivery/test_outcome.py::test_failures_without_reply_are_temporary",),
    "X.5.1": ("tests/protocol/test_sequence.py::test_nested_mail",),
    "X.5.2": (
        "tests/protocol/test_limits.py::test_longer_command_line_is_refused_and_the_session_goes_on",
    ),
    "X.5.3": ("tests/server/test_limits.py::test_max_recipients",),
    "X.5.4": ("tests/protocol/test_transcripts.py::test_arguments_to_commands_that_take_none",),
    "X.5.5": (
        "tests/mailserver/test_routing_situations.py::test_lhlo_on_an_smtp_listener_is_the_wrong_protocol",
        "tests/interop/test_downgrade_peers.py::test_an_lmtp_route_to_an_smtp_server_is_the_wrong_protocol",
    ),
    "X.5.6": ("tests/hostile/test_auth_abuse.py::test_malformed_sasl_and_huge_base64",),
    "X.6.0": ("tests/server/test_session.py::test_bare_line_feed_is_refused_by_default",),
    "X.6.1": ("tests/delivery/test_downgrade.py::test_an_8bit_fragment_cannot_be_converted",),
    "X.6.2": (
        "tests/interop/test_downgrade_peers.py::test_conversions_for_exim_without_8bitmime",
        "tests/delivery/test_downgrade.py::test_conversion_prohibited",
    ),
    "X.6.3": ("tests/interop/test_downgrade_peers.py::test_conversions_for_exim_without_8bitmime",),
    "X.6.4": (
        "tests/interop/test_downgrade_peers.py::test_a_lossy_conversion_is_reported_with_2_6_4",
        "tests/delivery/test_downgrade.py::test_text_in_no_known_charset_is_converted_with_loss",
    ),
    "X.6.5": (
        "tests/delivery/test_downgrade.py::test_broken_mime_fails_to_convert",
        "tests/delivery/test_downgrade.py::test_parts_nested_past_the_limit_fail_to_convert",
    ),
    "X.6.6": ("tests/interop/test_burl.py::test_a_url_that_does_not_resolve",),
    "X.6.7": (
        "tests/interop/test_smtplib.py::test_utf8_address_needs_smtputf8",
        "tests/interop/test_downgrade_peers.py::test_smtputf8_to_smtp_sink_without_smtputf8",
    ),
    "X.6.8": ("tests/mailserver/test_accounts.py::test_vrfy_of_a_utf8_mailbox_needs_smtputf8",),
    "X.6.9": (
        "tests/interop/test_downgrade_peers.py::test_smtputf8_to_smtp_sink_without_smtputf8",
    ),
    "X.7.0": (
        "tests/server/test_tls.py::test_require_tls",
        "tests/server/test_limits.py::test_max_connections",
    ),
    "X.7.1": ("tests/mailserver/test_receiving.py::test_rcpt_replies_on_the_mx_listener",),
    "X.7.2": (
        "tests/mailserver/test_accounts.py::test_only_members_may_post_to_a_members_only_list",
    ),
    "X.7.3": (
        "tests/interop/test_downgrade_peers.py::test_conversions_for_exim_without_8bitmime",
        "tests/delivery/test_downgrade.py::test_a_signed_part_is_never_converted",
    ),
    "X.7.4": (
        "tests/transport/test_levels.py::test_starttls_stripped_in_the_middle_nothing_goes_in_the_clear",
    ),
    "X.7.5": (
        "tests/delivery/test_outcome.py::test_failures_without_reply_are_temporary",
        "tests/transport/test_dane.py::test_a_tlsa_mismatch_is_not_delivered_then_returned_at_expiry",
        "tests/transport/test_mtasts.py::test_enforce_keeps_mail_from_an_mx_outside_the_policy_and_delivers_to_one_inside",
    ),
    "X.7.8": ("tests/interop/test_smtplib.py::test_wrong_password_reply_on_the_wire",),
    "X.7.9": ("tests/mailserver/test_accounts.py::test_a_user_who_may_use_scram_only",),
    "X.7.10": (
        "tests/transport/test_requiretls.py::test_a_requiretls_message_whose_tls_fails_comes_back_at_once_with_5_7_10",
    ),
    "X.7.11": ("tests/server/test_tls.py::test_plaintext_auth_hidden_before_tls",),
    "X.7.12": ("tests/mailserver/test_accounts.py::test_a_password_transition_to_scram",),
    "X.7.13": ("tests/mailserver/test_accounts.py::test_a_disabled_account_cannot_authenticate",),
    "X.7.14": ("tests/interop/test_burl.py::test_no_trust_relationship",),
    "X.7.15": (
        "tests/mailserver/test_priority_rrvs.py::test_a_listener_and_a_route_with_a_minimum_priority",
        "tests/mailserver/test_priority_rrvs.py::test_low_priorities_wait_while_the_queue_is_busy",
    ),
    "X.7.16": ("tests/mailserver/test_priority_rrvs.py::test_sizes_by_priority",),
    "X.7.17": ("tests/mailserver/test_priority_rrvs.py::test_rrvs_at_rcpt",),
    "X.7.18": ("tests/mailserver/test_priority_rrvs.py::test_rrvs_at_rcpt",),
    "X.7.19": (
        "tests/mailserver/test_priority_rrvs.py::test_rrvs_at_rcpt",
        "tests/mailserver/test_priority_rrvs.py::test_rrvs_to_a_next_hop_without_it",
    ),
    "X.7.20": (
        "tests/authentication/test_server.py::test_a_domain_that_requires_dkim",
        "tests/authentication/test_policy.py::test_a_domain_that_requires_dkim",
    ),
    "X.7.21": (
        "tests/authentication/test_server.py::test_a_domain_that_requires_dkim",
        "tests/authentication/test_policy.py::test_a_domain_that_requires_dkim",
    ),
    "X.7.22": ("tests/authentication/test_policy.py::test_a_domain_that_requires_dkim",),
    "X.7.23": ("tests/authentication/test_server.py::test_enforced_spf_refuses_at_mail",),
    "X.7.24": (
        "tests/authentication/test_server.py::test_enforced_spf_with_a_broken_record_or_silent_dns_gets_x_7_24",
    ),
    "X.7.25": (
        "tests/authentication/test_server.py::test_required_iprev_refuses_a_client_whose_reverse_dns_lies",
    ),
    "X.7.26": (
        "tests/authentication/test_server.py::test_forged_mail_as_a_reject_domain_gets_550_5_7_26",
        "tests/authentication/test_server.py::test_dns_that_never_answers_gets_451_within_the_budget",
        "tests/authentication/test_policy.py::test_dmarc_reject_quarantine_and_record",
    ),
    "X.7.27": (
        "tests/mailserver/test_routing_situations.py::test_sender_domains_that_take_no_mail",
    ),
    "X.7.28": (
        "tests/mailserver/test_routing_situations.py::test_a_flood_of_near_identical_messages_from_many_senders",
    ),
    "X.7.29": (
        "tests/authentication/test_policy.py::test_a_trusted_arc_seal_excuses_and_a_broken_one_is_550_5_7_29",
    ),
    "X.7.30": (
        "tests/transport/test_requiretls.py::test_without_a_verified_hop_that_offers_it_requiretls_mail_comes_back_with_5_7_30",
    ),
}


@dataclass(frozen=True, slots=True)
class RegistryRow:
    code: str  # "X.1.1"
    title: str
    replies: tuple[str, ...]  # catalogue names of the replies that carry it
    reports: tuple[str, ...]  # report statuses (mailroom.codes.reports) that carry it
    tests: tuple[str, ...]
    reason: str | None
    in_progress: str | None

    @property
    def sent(self) -> bool:
        return bool(self.replies or self.reports)

    @property
    def status(self) -> str:
        if self.in_progress is not None:
            return "in progress"
        if self.sent:
            return "sent"
        if self.reason is not None:
            return "cannot be met"
        return "missing"


def _key(status: object) -> str:
    return f"X.{status.subject}.{status.detail}"  # type: ignore[attr-defined]


def registry_rows() -> list[RegistryRow]:
    """One row per code of the registry, in the registry's order."""
    replies: dict[str, list[str]] = {}
    for name, template in CATALOGUE.items():
        if template.status is not None:
            replies.setdefault(_key(template.status), []).append(name)
    reports: dict[str, list[str]] = {}
    for name, report in REPORTS.items():
        reports.setdefault(_key(report.status), []).append(name)
    rows = []
    for code, entry in enhanced_code_entries().items():
        rows.append(
            RegistryRow(
                code=code,
                title=entry.title or entry.description,
                replies=tuple(replies.get(code, ())),
                reports=tuple(reports.get(code, ())),
                tests=TESTS.get(code, ()),
                reason=NOT_MET.get(code),
                in_progress=IN_PROGRESS.get(code),
            )
        )
    return rows


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _situations(row: RegistryRow) -> str:
    parts = []
    for name in row.replies:
        template = CATALOGUE[name]
        parts.append(f"`{template.label}` {name}: {template.when}")
    for name in row.reports:
        report = REPORTS[name]
        parts.append(
            f"`{report.status}` {name}: in a delivery status notification when {report.when}"
        )
    return "<br>".join(_escape(p) for p in parts)


_HEADER = """\
# The registry of enhanced status codes, and mailroom

Generated by `mailroom replies --registry` from `src/mailroom/codes/coverage.py`, the catalogue
of replies (`codes/catalogue.py`) and the catalogue of report statuses (`codes/reports.py`); a
test keeps this file in sync. One row per code of the IANA "SMTP Enhanced Status Codes"
registry (RFC 5248): where mailroom sends it — a reply (by its catalogue name) or a status in a
delivery status notification (RFC 3464) — and the test that shows it; or, for a code no SMTP
server, LMTP server, submission server or queue can meet, why not.

{summary}

| code | title | status | where mailroom sends it | shown by | why not |
|---|---|---|---|---|---|
"""


def summary(rows: list[RegistryRow]) -> str:
    sent = sum(1 for r in rows if r.sent)
    waiting = [r.code for r in rows if r.in_progress is not None and not r.sent]
    reasons = [r.code for r in rows if r.status == "cannot be met"]
    progress = (
        f"{len(waiting)} come with work in progress ({', '.join(waiting)}); " if waiting else ""
    )
    return (
        f"mailroom sends {sent} of the registry's {len(rows)} codes; {progress}"
        f"{len(reasons)} no server can meet ({', '.join(reasons)})."
    )


def registry_markdown() -> str:
    rows = registry_rows()
    out = [_HEADER.format(summary=summary(rows))]
    for row in rows:
        tests = "<br>".join(f"`{t}`" for t in row.tests)
        why = row.reason or row.in_progress or ""
        out.append(
            f"| {row.code} | {_escape(row.title)} | {row.status} | {_situations(row)} "
            f"| {tests} | {_escape(why)} |\n"
        )
    return "".join(out)


def registry_text() -> str:
    """The table for a terminal: one block per code."""
    rows = registry_rows()
    out = [summary(rows), ""]
    for row in rows:
        out.append(f"{row.code:<7} {row.status:<14} {row.title}")
        for name in row.replies:
            out.append(f"        reply  {CATALOGUE[name].label:<11} {name}")
        for name in row.reports:
            out.append(f"        report {REPORTS[name].status!s:<11} {name}")
        for test in row.tests:
            out.append(f"        test   {test}")
        if row.reason:
            out.append(f"        why not: {row.reason}")
        if row.in_progress:
            out.append(f"        {row.in_progress}")
    return "\n".join(out) + "\n"
