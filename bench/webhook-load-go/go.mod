module trio-controller/bench/webhook-load-go

go 1.26
