"""coreclean dashboard: ``streamlit run dashboard.py`` (opens on the embedded digits demo)."""
import streamlit as st

from ui import access

st.set_page_config(page_title="coreclean", layout="wide")
access.require_access()

pages = [
    st.Page("pages/overview.py", title="Overview", icon=":material/dashboard:", url_path="overview", default=True),
    st.Page("pages/confusion.py", title="Confusion", icon=":material/grid_on:", url_path="confusion"),
    st.Page("pages/importance.py", title="Importance", icon=":material/bar_chart:", url_path="importance"),
    st.Page("pages/review.py", title="Review", icon=":material/photo_library:", url_path="review"),
    st.Page("pages/decisions.py", title="Decisions", icon=":material/fact_check:", url_path="decisions"),
    st.Page("pages/map.py", title="Map", icon=":material/scatter_plot:", url_path="map"),
    st.Page("pages/duplicates.py", title="Duplicates", icon=":material/content_copy:", url_path="duplicates"),
    st.Page("pages/sample.py", title="Sample", icon=":material/image_search:", url_path="sample"),
]
# The navigation comes before anything slow: until it is sent, a fresh server's sidebar shows Streamlit's raw list
# of pages/ files (its legacy mode), through the imports below and a first build (minutes).
page = st.navigation(pages)
from ui import state  # seconds to import (the compute layer): after the navigation

st.session_state["analysis"] = state.select_round(state.select_source())
st.sidebar.text_input("Reviewer name (optional)", key="reviewer", bind="query-params")
with state.page_errors():  # a damaged file a page reads: a message naming it, the other pages keep working
    page.run()
