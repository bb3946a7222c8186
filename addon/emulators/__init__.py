"""Local emulators of the customer-side providers, shared by the demo and the tests."""
