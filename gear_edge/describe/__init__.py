"""Describe stage: exact region attributes and relations, OCR text, region captions, scene text."""
