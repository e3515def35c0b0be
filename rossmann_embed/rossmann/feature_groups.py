"""Names of the Rossmann features, grouped: what `train --features` and `--drop-features`
choose from. Plain names only (no torch, no polars), so reading options stays fast."""

from __future__ import annotations

WEATHER_COLUMNS = ["Max_TemperatureC", "Mean_TemperatureC", "Min_TemperatureC", "Mean_Humidity",
                   "Mean_Wind_SpeedKm_h", "Precipitationmm", "CloudCover"]
PAPER_FEATURES = ["Store", "DayOfWeek", "Day", "Month", "Year", "Promo", "State"]
# The paper's embedding sizes: `train --features paper` uses them (unless --embedding-size
# says otherwise), since a narrow Store embedding leaves the map to the State one.
PAPER_EMBEDDING_SIZES = {"Store": 10, "DayOfWeek": 6, "Day": 10, "Month": 6, "Year": 2,
                         "Promo": 1, "State": 6}
# Named groups of the full feature set, for `train --drop-features` (Store and State, whose
# embeddings the maps study, are in none).
FEATURE_GROUPS: dict[str, list[str]] = {
    "calendar": ["DayOfWeek", "Year", "Month", "Day", "WeekOfYear", "DayOfYear"],
    "promo": ["Promo", "PromoLast7", "PromoNext7", "DaysSincePromo", "DaysUntilPromo"],
    "state_holidays": ["StateHoliday", "StateHolidayLast7", "StateHolidayNext7",
                       "DaysSinceStateHoliday", "DaysUntilStateHoliday", "DaysFromEaster"],
    "school_holidays": ["SchoolHoliday", "SchoolHolidayLast7", "SchoolHolidayNext7",
                        "DaysSinceSchoolHoliday", "DaysUntilSchoolHoliday"],
    "competition": ["CompetitionMonthsOpen", "CompetitionOpenSinceYear",
                    "LogCompetitionDistance"],
    "promo2": ["Promo2", "Promo2Weeks", "Promo2SinceYear", "Promo2Active", "PromoInterval"],
    "store_type": ["StoreType", "Assortment"],
    "weather": [*WEATHER_COLUMNS, "Events"],
    "trends": ["Trend", "TrendDE"],
}
FEATURE_SETS = ("full", "paper")
