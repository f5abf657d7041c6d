module trio-controller/bench/streamserver

go 1.26
