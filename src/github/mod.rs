//! GitHub: the octocrab adapter behind small traits; the one retry policy lives here.
