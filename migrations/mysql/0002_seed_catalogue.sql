-- The demo catalogue.
INSERT INTO products (sku, name, description, price_fen, stock, position) VALUES
 ('TEA-OOLONG', 'Tieguanyin oolong', 'Anxi oolong tea, 100 g tin', 6800, 20, 1),
 ('MUG-CELADON', 'Celadon mug', 'Longquan celadon glaze, 350 ml', 12800, 8, 2),
 ('BUN-RED', 'Red bean buns', 'Box of six, baked this morning', 2450, 40, 3),
 ('NB-GRID', 'Grid notebook', 'A5, 120 pages, lay-flat binding', 1590, 3, 4),
 ('PIN-PANDA', 'Panda enamel pin', 'Hard enamel, gold plated', 101, 50, 5);
