"""Tenants: bakery businesses, with the country/subdivision/time zone their data lives in."""
