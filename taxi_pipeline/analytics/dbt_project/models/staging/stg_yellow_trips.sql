{{ staged_trips('yellow', 'tpep') }}
