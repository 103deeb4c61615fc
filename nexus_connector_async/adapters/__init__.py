"""Vendor adapters: Stripe, PayPal, Twilio and AWS SNS."""
