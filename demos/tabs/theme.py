"""The app's colours: gradio's default theme, with every text at WCAG AA contrast (4.5:1) in light and dark mode."""

import gradio as gr

THEME = gr.themes.Default().set(
    # Info texts, slider ranges, the footer: the default zinc-400 is 1.9:1 on white; zinc-500 is 4.8:1.
    body_text_color_subdued="*neutral_500",
    # White on the default orange-500 is 2.8:1; on orange-700, 5.2:1.
    button_primary_background_fill="*primary_700",
    button_primary_background_fill_hover="*primary_800",
    button_primary_background_fill_dark="*primary_700",
    button_primary_background_fill_hover_dark="*primary_800",
    color_accent="*primary_700",  # the selected tab's name: the default orange-500 on white is 2.8:1
)

# gradio's themes have no dark variant of color_accent, and no orange reads at 4.5:1 on both white and the dark
# page: in dark mode the accent stays orange-500 (5.3:1 there).
CSS = ".dark { --color-accent: var(--primary-500); }"
