"""Report: format stored runs and judgements as markdown, HTML, figures and summary tables."""
