"""Dates as the pages write them ("2 Mar 2026", see arcrm.dates.format_day),
for what Django formats itself: the admin's lists, fields and filters."""

DATE_FORMAT = "j M Y"
DATETIME_FORMAT = "j M Y H:i"
SHORT_DATE_FORMAT = "j M Y"
SHORT_DATETIME_FORMAT = "j M Y H:i"
MONTH_DAY_FORMAT = "j M"
YEAR_MONTH_FORMAT = "M Y"
