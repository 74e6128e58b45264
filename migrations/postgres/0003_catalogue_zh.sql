-- The catalogue in Simplified Chinese (shown to shoppers who read Chinese; English otherwise).
ALTER TABLE products ADD COLUMN name_zh text;
ALTER TABLE products ADD COLUMN description_zh text;
UPDATE products SET name_zh = '铁观音乌龙茶', description_zh = '安溪乌龙茶，100 克罐装' WHERE sku = 'TEA-OOLONG';
UPDATE products SET name_zh = '青瓷马克杯', description_zh = '龙泉青瓷釉，350 毫升' WHERE sku = 'MUG-CELADON';
UPDATE products SET name_zh = '红豆包', description_zh = '六个一盒，今早新鲜出炉' WHERE sku = 'BUN-RED';
UPDATE products SET name_zh = '方格笔记本', description_zh = 'A5，120 页，可平摊装订' WHERE sku = 'NB-GRID';
UPDATE products SET name_zh = '熊猫珐琅徽章', description_zh = '硬珐琅，镀金' WHERE sku = 'PIN-PANDA';
