"""The one date-time and number format of the product's screens and e-mails.

Django's en locale would write "Nov. 27, 2026, 10:19 p.m." in one place and "11/27/2026 10:19
p.m." in another; every screen and e-mail uses these instead (settings.FORMAT_MODULE_PATH).
pools/formats.py holds the same rules for Python code and the exports.
"""

DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = "Y-m-d"
DATETIME_FORMAT = "Y-m-d H:i"
SHORT_DATETIME_FORMAT = "Y-m-d H:i"
TIME_FORMAT = "H:i"
DECIMAL_SEPARATOR = "."
THOUSAND_SEPARATOR = ","
NUMBER_GROUPING = 3
