"""Meteors and satellites: streaks that appear in one night frame and were not in the previous one."""

from obsy_allsky.streaks.detect import Streak, StreakDetector, StreakSettings, classify_profile, crop_png

__all__ = ["Streak", "StreakDetector", "StreakSettings", "classify_profile", "crop_png"]
