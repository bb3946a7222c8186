"""The audit trail: a HAR 1.2 file proving each request left through the customer's account."""
