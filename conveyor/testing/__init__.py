"""Helpers for testing Conveyor and its back ends: conformance suites and service launchers."""
