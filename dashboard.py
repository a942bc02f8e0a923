"""coreclean dashboard: ``streamlit run dashboard.py`` (opens on the embedded digits demo)."""
import streamlit as st

from ui import access

st.set_page_config(page_title="coreclean", layout="wide")
access.require_access()

# The default page is served at the root URL whatever its url_path; "/overview" (the name the navigation shows) is a
# hidden page that switches to it, keeping the link's parameters (without it: "Page not found").
overview = st.Page("pages/overview.py", title="Overview", icon=":material/dashboard:", url_path="home", default=True)
overview_link = st.Page(lambda: st.switch_page(overview, query_params=st.query_params.to_dict()), title="Overview",
                        url_path="overview", visibility="hidden")
pages = [
    overview,
    st.Page("pages/confusion.py", title="Confusion", icon=":material/grid_on:", url_path="confusion"),
    st.Page("pages/importance.py", title="Importance", icon=":material/bar_chart:", url_path="importance"),
    st.Page("pages/review.py", title="Review", icon=":material/photo_library:", url_path="review"),
    st.Page("pages/decisions.py", title="Decisions", icon=":material/fact_check:", url_path="decisions"),
    st.Page("pages/map.py", title="Map", icon=":material/scatter_plot:", url_path="map"),
    st.Page("pages/duplicates.py", title="Duplicates", icon=":material/content_copy:", url_path="duplicates"),
    st.Page("pages/sample.py", title="Sample", icon=":material/image_search:", url_path="sample"),
    overview_link,
]
# The navigation comes before anything slow: until it is sent, a fresh server's sidebar shows Streamlit's raw list
# of pages/ files (its legacy mode), through the imports below and a first build (minutes).
page = st.navigation(pages)
if page is overview_link:
    page.run()  # switches to the Overview (a rerun) before anything slow
from ui import state  # seconds to import (the compute layer): after the navigation

st.session_state["analysis"] = state.select_round(state.select_source())
st.sidebar.text_input("Reviewer name (optional)", key="reviewer", bind="query-params")
with state.page_errors():  # a damaged file a page reads: a message naming it, the other pages keep working
    page.run()
