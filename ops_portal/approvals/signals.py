from django.dispatch import Signal

# Sent after commit when a request ends (approved, rejected, expired, invalidated, withdrawn).
# Receivers get `request`. The jobs app listens and queues or ends the job the request covers.
request_decided = Signal()
# Sent inside the transaction that opens a request (before commit), with `request` and `actor`.
# The jobs app listens and launches the dry run of a job whose action has one (check mode, --noop),
# so approvers see what the work would change before they decide.
request_opened = Signal()
