"""Messages for the web tests, and sending them over SMTP with smtplib."""

from __future__ import annotations

import smtplib
from email import policy
from email.message import EmailMessage
from email.utils import make_msgid

from tests.live import LiveServer, queue_id_of

PIXEL = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d4944415478da63f8cfc0f01f0005000201a5f4c4b90000000049454e44ae426082"
)
PDF = b"%PDF-1.4\n% a tiny attachment for the tests\n%%EOF\n"


def plain(subject: str = "Hello", body: str = "Just text.\n", **fields: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = fields.pop("From", "Alice Example <alice@example.test>")
    message["To"] = fields.pop("To", "Bob <bob@example.test>")
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="example.test")
    for name, value in fields.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    return message


def rich(subject: str = "Quarterly report") -> EmailMessage:
    """Text and HTML alternatives, an inline image the HTML shows by cid:, a PDF attached,
    and a tracking image on another host that the viewer must not load."""
    message = plain(
        subject, "The report is attached.\nRegards, Carol\n", From="Carol <carol@example.test>"
    )
    message["Cc"] = "Dave <dave@example.test>"
    message.add_alternative(
        '<html><body><h1 id="title">Quarterly report</h1><p>See the chart:</p>'
        '<img id="chart" src="cid:chart@example.test">'
        '<img id="tracker" src="http://tracker.example.test/open.gif">'
        "<script>document.getElementById('title').textContent = 'script ran'</script>"
        "</body></html>",
        subtype="html",
    )
    html_part = message.get_payload()[1]
    html_part.add_related(PIXEL, "image", "png", cid="<chart@example.test>", filename="chart.png")
    message.add_attachment(PDF, maintype="application", subtype="pdf", filename="report.pdf")
    return message


def send(
    live: LiveServer,
    message: EmailMessage,
    sender: str = "alice@example.test",
    recipients: list[str] | None = None,
) -> str:
    """Send over SMTP; the queue id from the 250 reply."""
    recipients = recipients or ["bob@example.test"]
    with smtplib.SMTP(*live.smtp, timeout=30) as client:
        client.ehlo("client.example.test")
        client.mail(sender)
        for recipient in recipients:
            code, reply = client.rcpt(recipient)
            assert code == 250, reply
        code, reply = client.data(message.as_bytes(policy=policy.SMTP))
        assert code == 250, reply
    return queue_id_of(reply.decode())
