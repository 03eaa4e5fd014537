from django.dispatch import Signal

# Sent after commit when a request ends (approved, rejected, expired, invalidated, withdrawn).
# Receivers get `request`. The jobs app listens and queues or ends the job the request covers.
request_decided = Signal()
