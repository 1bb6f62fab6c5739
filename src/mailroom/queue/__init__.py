"""The outbound queue: messages for remote recipients, durable until delivered or bounced."""

from mailroom.queue.entry import QueueEntry, QueueRecipient, QueueSpool

__all__ = ["QueueEntry", "QueueRecipient", "QueueSpool"]
